"""The export manifest (``manifest.json``): the one module that knows its shape.

An export folder holds model files and this manifest, which says for each file its format, precision,
size, sha256 and parity status, and for the whole folder the model, its input spec and outputs and the
checkpoint it came from. The exporter writes it, and the benchmark, ``evaluate``/``predict`` and the
Android installer read it, all through here, so that every reader gets the same checks:

* a manifest is validated on read: its format marker, every entry's fields and types, no file named twice;
* every file name resolves inside the manifest's own folder (no absolute path, no ``..``, no symlink out);
* ``verify`` checks a file's size and sha256 against its entry before anyone uses it;
* it is written atomically, with paths relative to itself.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_age.io import atomic_write_json, sha256_file, sha256_path

FORMAT = "edge-age-export/1"
NAME = "manifest.json"
SPLIT_NAME = "split.json"  # a copy of the training run's split, so the export is scored on it wherever it goes
# Status of an entry: pass / fail (parity) / export-failed / needs-macos (Core ML: structure checked only)
USABLE = ("pass", "needs-macos")


class ManifestError(ValueError):
    """A manifest that cannot be trusted: unreadable, of another format, or naming a path outside its folder."""


def confined(folder: Path, name, what: str) -> Path:
    """``folder / name`` for a relative ``name`` that stays inside ``folder`` after resolving symlinks; anything
    else (empty, absolute, '..', a link out) is refused with a message naming ``what``."""
    if not isinstance(name, str) or not name.strip() or name in (".", ".."):
        raise ManifestError(f"{what}: {name!r} is not a file name")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ManifestError(f"{what}: {name!r} points outside its folder {folder}")
    path = folder / relative
    root = folder.resolve()
    resolved = path.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ManifestError(f"{what}: {name!r} resolves to {resolved}, outside its folder {folder}")
    return path


@dataclass
class FileEntry:
    """One exported file. ``details`` carries the rest: parity figures, TFLite tensor specs, layout, timing."""

    file: str
    format: str
    precision: str
    status: str
    reason: str = ""
    bytes: int | None = None
    sha256: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.status in USABLE

    @property
    def parity(self) -> dict:
        return self.details.get("parity", {})

    def to_dict(self) -> dict:
        plain = asdict(self)
        return {**{k: v for k, v in plain.items() if k != "details"}, **plain["details"]}

    @classmethod
    def from_dict(cls, raw, where: str) -> "FileEntry":
        if not isinstance(raw, dict):
            raise ManifestError(f"{where}: an entry is a {type(raw).__name__}, not an object")
        for key in ("file", "format", "precision", "status"):
            if not isinstance(raw.get(key), str):
                raise ManifestError(f"{where}: entry {raw.get('file')!r} has no text field {key!r}")
        size, digest = raw.get("bytes"), raw.get("sha256")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise ManifestError(f"{where}: entry {raw['file']!r} has a bad size {size!r}")
        if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
            raise ManifestError(f"{where}: entry {raw['file']!r} has a bad sha256 {digest!r}")
        core = {"file", "format", "precision", "status", "reason", "bytes", "sha256"}
        return cls(file=raw["file"], format=raw["format"], precision=raw["precision"], status=raw["status"],
                   reason=str(raw.get("reason") or ""), bytes=size, sha256=digest,
                   details={k: v for k, v in raw.items() if k not in core})


@dataclass
class Manifest:
    """An export folder's manifest: ``header`` (model, input, outputs, source, thresholds, ...) and its files."""

    folder: Path
    header: dict
    files: list[FileEntry] = field(default_factory=list)

    # ---- what the readers need
    @property
    def model(self) -> dict:
        return self.header["model"]

    @property
    def input(self) -> dict:
        return self.header["input"]

    @property
    def source(self) -> dict:
        return self.header.get("source", {})

    def path(self, entry: FileEntry) -> Path:
        return confined(self.folder, entry.file, f"{self.folder / NAME}")

    def entry(self, fmt: str, precision: str) -> FileEntry | None:
        return next((e for e in self.files if e.format == fmt and e.precision == precision), None)

    def verify(self, entry: FileEntry) -> str | None:
        """None when the file on disk is the one the manifest describes; else what is wrong, in words."""
        path = self.path(entry)
        if not path.exists():
            return f"{entry.file} is missing"
        if entry.sha256 is None:
            return f"{entry.file} has no recorded sha256 to check it against; re-export it"
        if entry.bytes is not None and path.is_file() and path.stat().st_size != entry.bytes:
            return f"{entry.file} is {path.stat().st_size:,} bytes, its manifest says {entry.bytes:,}: changed or truncated"
        if sha256_path(path) != entry.sha256:
            return f"{entry.file} does not match the sha256 in its manifest: changed since export; re-export it"
        return None

    @property
    def split_file(self) -> Path | None:
        """The run's split saved with the export (confined to this folder), or None for an export without one."""
        recorded = self.header.get("split")
        if not isinstance(recorded, dict):
            return None
        return confined(self.folder, recorded.get("file"), f"{self.folder / NAME}: split")

    def verified_split(self) -> Path | None:
        """``split_file`` if it is there and unchanged (sha256), else None."""
        path = self.split_file
        if path is None or not path.is_file() or sha256_file(path) != self.header["split"].get("sha256"):
            return None
        return path

    def source_path(self, key: str) -> Path | None:
        """A provenance path (``source.run``/``source.checkpoint``) resolved against this folder. These point
        at the training run, outside the export folder, so callers verify what they read (checkpoint sha256)."""
        recorded = self.source.get(key)
        if not isinstance(recorded, str) or not recorded:
            return None
        path = Path(recorded)
        return path if path.is_absolute() else self.folder / path

    # ---- writing
    def to_dict(self) -> dict:
        return {**self.header, "format": FORMAT, "files": [e.to_dict() for e in self.files]}

    def write(self) -> Path:
        names = [e.file for e in self.files]
        for entry in self.files:
            self.path(entry)  # never write a manifest that names a path outside its folder
        if len(set(names)) != len(names):
            raise ManifestError(f"{self.folder}: a file is listed twice")
        atomic_write_json(self.folder / NAME, self.to_dict())
        return self.folder / NAME


def relative_to_folder(path: Path | str | None, folder: Path) -> str | None:
    """How a manifest records a provenance path: relative to the manifest's folder, never a machine's absolute path."""
    if path is None:
        return None
    return os.path.relpath(Path(path).resolve(), Path(folder).resolve())


def read_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``folder/manifest.json``; every problem is a ManifestError that says what and where."""
    folder = Path(folder)
    path = folder / NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no export manifest; run `edge-age export` first")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{path} is not valid JSON ({err}); re-run `edge-age export`") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise ManifestError(f"{path} is not an edge-age export manifest (format {found!r}, expected {FORMAT!r})")
    for key, kind in (("model", dict), ("input", dict), ("files", list)):
        if not isinstance(raw.get(key), kind):
            raise ManifestError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    if not isinstance(raw["input"].get("size"), int) or not 8 <= raw["input"]["size"] <= 4096:
        raise ManifestError(f"{path}: input size {raw['input'].get('size')!r} is not a whole number of pixels")
    files = [FileEntry.from_dict(item, str(path)) for item in raw["files"]]
    manifest = Manifest(folder, {k: v for k, v in raw.items() if k not in ("files", "format")}, files)
    manifest.split_file  # a split entry naming a path outside the folder is refused like a file entry
    seen = set()
    for entry in files:
        manifest.path(entry)
        if entry.file in seen:
            raise ManifestError(f"{path}: {entry.file!r} is listed twice")
        seen.add(entry.file)
    return manifest
