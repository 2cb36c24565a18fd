"""Labelled face sets (UTKFace folders, CSV lists), seeded splits, and the decoded-image cache."""
from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge_age.images import ImageReadError, load_for_model
from edge_age.io import atomic_write_json
from edge_age.manifest import confined

DEFAULT_DATA_HINT = "../shared/data/utkface/images"
UTKFACE_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{8,})\.jpg\.chip\.jpg$")
MAX_BIN_AGE = 100
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)  # the paper's 7:2:1


@dataclass
class LabelledImages:
    """Image files (relative to root) with age in years and gender (0 male, 1 female)."""

    root: Path
    files: list[str]
    ages: np.ndarray
    genders: np.ndarray
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def select(self, indices) -> "LabelledImages":
        indices = np.asarray(indices, dtype=np.int64)
        return LabelledImages(self.root, [self.files[i] for i in indices], self.ages[indices], self.genders[indices])

    def sample(self, count: int, seed: int = 0) -> "LabelledImages":
        """A seeded random ``count`` of the images (all when there are fewer), kept in file order. Files are in
        name order, i.e. youngest first, so a plain head would not do."""
        if count >= len(self):
            return self
        return self.select(np.sort(np.random.default_rng(seed).permutation(len(self))[:count]))

    @property
    def paths(self) -> list[Path]:
        return [self.root / f for f in self.files]

    def ages_over(self, limit: int = MAX_BIN_AGE) -> int:
        """How many ages exceed the 101-bin head's range (they are clipped to 100 for its target)."""
        return int((self.ages > limit).sum())


def parse_utkface_name(name: str) -> tuple[int, int, int] | None:
    """``age_gender_race_date.jpg.chip.jpg`` -> (age, gender, race), or None for a mis-named file."""
    match = UTKFACE_NAME.match(name)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def scan_utkface(folder: str | Path) -> LabelledImages:
    """Label every image of a UTKFace folder from its file name; mis-named files are skipped with a warning."""
    folder = Path(folder)
    files, ages, genders, skipped = [], [], [], []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        labels = parse_utkface_name(name)
        if labels is None:
            skipped.append(name)
            continue
        files.append(name)
        ages.append(labels[0])
        genders.append(labels[1])
    if skipped:
        shown = ", ".join(repr(s) for s in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} file(s) in {folder} whose names are not age_gender_race_date.jpg.chip.jpg: {shown}",
                      stacklevel=2)
    if not files:
        raise ValueError(f"no UTKFace-named images (age_gender_race_date.jpg.chip.jpg) in {folder}")
    return LabelledImages(folder, files, np.array(ages, dtype=np.int64), np.array(genders, dtype=np.int64), skipped)


MAX_LABEL_AGE = 120  # UTKFace's oldest face is 116


def _parse_label_row(row: dict, root: Path, where: str) -> tuple[str, int, int]:
    """(file, age, gender) of one CSV row, or ValueError saying what is wrong with it. The rule: ages are whole
    years 0..120 ("34" or "34.0"; "34.5" is refused, not truncated), gender is 0 (male) or 1 (female), and the
    file is a relative path inside the data folder."""
    name = (row.get("file") or "").strip()
    confined(root, name, where)  # no absolute path, no '..', no link out of the data folder
    try:
        age = float((row.get("age") or "").strip())
    except ValueError:
        raise ValueError(f"age {row.get('age')!r} is not a number") from None
    if not age.is_integer() or not 0 <= age <= MAX_LABEL_AGE:
        raise ValueError(f"age {row.get('age')!r} is not a whole number of years in 0..{MAX_LABEL_AGE}")
    gender = (row.get("gender") or "").strip()
    if gender not in ("0", "1"):
        raise ValueError(f"gender {row.get('gender')!r} is not 0 (male) or 1 (female)")
    return name, int(age), int(gender)


def read_labels_csv(csv_path: str | Path, root: str | Path | None = None) -> LabelledImages:
    """A CSV ``file,age,gender`` (gender 0 male, 1 female); files are relative to ``root`` (default: the CSV's
    folder). A UTF-8 BOM, CRLF line ends, quoted fields and extra columns are fine. Rows that break the rule of
    ``_parse_label_row``, and repeats of a file already listed, are left out, counted and named in a warning."""
    csv_path = Path(csv_path)
    root = Path(root) if root is not None else csv_path.parent
    files, ages, genders, rejected, seen = [], [], [], [], set()
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if not {"file", "age", "gender"} <= set(columns):
            raise ValueError(f"{csv_path}: needs a header with columns file,age,gender (gender 0 male, 1 female); "
                             f"found {reader.fieldnames}")
        reader.fieldnames = columns
        for line_no, row in enumerate(reader, start=2):
            try:
                name, age, gender = _parse_label_row(row, root, "file")
                if name in seen:
                    raise ValueError(f"{name!r} is listed again (first label kept)")
            except ValueError as err:
                rejected.append(f"line {line_no}: {err}")
                continue
            seen.add(name)
            files.append(name)
            ages.append(age)
            genders.append(gender)
    if rejected:
        shown = "; ".join(rejected[:5]) + (" ..." if len(rejected) > 5 else "")
        warnings.warn(f"{csv_path}: skipped {len(rejected)} row(s): {shown}", stacklevel=2)
    if not files:
        raise ValueError(f"{csv_path}: no usable rows" + (f" ({len(rejected)} rejected: {rejected[0]})" if rejected else ""))
    return LabelledImages(root, files, np.array(ages, dtype=np.int64), np.array(genders, dtype=np.int64), rejected)


def load_labelled(data_dir: str | Path, labels_csv: str | Path | None = None) -> LabelledImages:
    """A UTKFace-named folder, or a folder plus a ``file,age,gender`` CSV."""
    if labels_csv is not None:
        return read_labels_csv(labels_csv, root=data_dir)
    return scan_utkface(data_dir)


def resolve_data_dir(flag: str | Path | None = None) -> Path:
    """--data DIR, else $EDGE_AGE_DATA, else ../shared/data/utkface/images beside the repo root."""
    if flag:
        candidates = [Path(flag)]
        source = "--data"
    elif os.environ.get("EDGE_AGE_DATA"):
        candidates = [Path(os.environ["EDGE_AGE_DATA"])]
        source = "$EDGE_AGE_DATA"
    else:
        repo_root = Path(__file__).resolve().parents[1]
        candidates = [repo_root / DEFAULT_DATA_HINT, Path.cwd() / DEFAULT_DATA_HINT]
        source = "the default location"
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"no face data at {candidates[0]} ({source}). Get the UTKFace 'Aligned&Cropped Faces' release "
        "(https://susanqq.github.io/UTKFace/, non-commercial research only), unpack its *.jpg.chip.jpg files "
        "into a folder, and pass it with --data DIR or set EDGE_AGE_DATA."
    )


def resolve_run_data_dir(flag: str | Path | None, recorded: str | None, run_dir: Path | None = None) -> Path:
    """The data of a finished run: --data or $EDGE_AGE_DATA when given, else the folder the run recorded (relative
    to ``run_dir``; older runs recorded an absolute path) if it exists on this machine, else the default location."""
    if not flag and not os.environ.get("EDGE_AGE_DATA") and recorded:
        path = Path(recorded) if Path(recorded).is_absolute() or run_dir is None else Path(run_dir) / recorded
        if path.is_dir():
            return path.resolve()
    return resolve_data_dir(flag)


# ---------------------------------------------------------------- splits

def make_split(data: LabelledImages, seed: int = 0, fractions=DEFAULT_FRACTIONS, subset: int | None = None) -> dict:
    """A deterministic train/val/test split by file name; ``subset`` first draws that many images (coursework: 5000)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = sorted(range(len(data)), key=lambda i: data.files[i])  # independent of listing order
    rng = np.random.default_rng(seed)
    perm = [order[i] for i in rng.permutation(len(order))]
    if subset is not None:
        if not 0 < subset <= len(perm):
            raise ValueError(f"subset of {subset} images (from --subset or the recipe) must be between 1 and the "
                             f"{len(perm)} images available; pass --subset N to change it")
        perm = perm[:subset]
    n_train = int(round(fractions[0] * len(perm)))
    n_val = int(round(fractions[1] * len(perm)))
    parts = {"train": perm[:n_train], "val": perm[n_train:n_train + n_val], "test": perm[n_train + n_val:]}
    split = {"seed": seed, "subset": subset, "fractions": list(fractions)}
    split["counts"] = {name: len(idx) for name, idx in parts.items()}
    for name, idx in parts.items():
        split[name] = sorted(data.files[i] for i in idx)
    return split


def save_split(split: dict, path: str | Path) -> str:
    """Write split.json atomically; returns its sha256 (recorded in the run's config)."""
    atomic_write_json(path, split)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_split(path: str | Path) -> dict:
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable split file ({err})") from None
    if not isinstance(split, dict) or not all(isinstance(split.get(name), list) for name in SPLIT_NAMES):
        raise ValueError(f"{path}: a split file needs lists 'train', 'val' and 'test'")
    for name in SPLIT_NAMES:
        if not all(isinstance(f, str) for f in split[name]):
            raise ValueError(f"{path}: the {name!r} list must hold file names (strings)")
        if len(set(split[name])) != len(split[name]):
            raise ValueError(f"{path}: the {name!r} list names a file more than once")
    for i, first in enumerate(SPLIT_NAMES):  # a face in two parts would leak into validation or test
        for second in SPLIT_NAMES[i + 1:]:
            shared = set(split[first]) & set(split[second])
            if shared:
                raise ValueError(f"{path}: {len(shared)} file(s) are in both {first!r} and {second!r} "
                                 f"(first: {sorted(shared)[0]}); each face belongs to one part")
    if not split["train"] or not split["val"]:
        raise ValueError(f"{path}: the 'train' and 'val' lists must not be empty")
    return split


def apply_split(data: LabelledImages, split: dict, name: str) -> LabelledImages:
    """The part ``name`` of a split, as labelled images; files missing from ``data`` are an error."""
    index = {f: i for i, f in enumerate(data.files)}
    missing = [f for f in split[name] if f not in index]
    if missing:
        raise ValueError(f"{len(missing)} file(s) of the {name} split are not in {data.root} (first: {missing[0]}); "
                         "is --data the folder the run was trained on?")
    return data.select([index[f] for f in split[name]])


# ---------------------------------------------------------------- decoded cache

def cache_root() -> Path:
    return Path(os.environ.get("EDGE_AGE_CACHE", Path.home() / ".cache" / "edge-age"))


def _cache_key(data: LabelledImages, size: int) -> str:
    digest = hashlib.sha256(f"v1|{data.root.resolve()}|{size}".encode())
    for path in data.paths:
        stat = path.stat() if path.exists() else None
        digest.update(f"|{path.name}:{stat.st_size if stat else -1}:{int(stat.st_mtime) if stat else -1}".encode())
    return digest.hexdigest()[:20]


def _decode_one(args) -> tuple[np.ndarray | None, str | None]:
    path, size = args
    try:
        return load_for_model(path, size), None
    except ImageReadError as err:
        return None, str(err)


@dataclass
class DecodedImages:
    """Images decoded once at one size: ``pixels`` is N x size x size x 3 uint8 (a memory-map)."""

    data: LabelledImages
    pixels: np.ndarray

    def __len__(self) -> int:
        return len(self.data)


def decoded_cache(data: LabelledImages, size: int, workers: int | None = None, verbose: bool = True) -> DecodedImages:
    """Decode and resize every image once into a uint8 memory-map under $EDGE_AGE_CACHE (~/.cache/edge-age).

    Unreadable images are dropped (counted and named in a warning). A later call with the same files
    and size reads the map back, so an epoch never decodes JPEGs again.
    """
    directory = cache_root()
    directory.mkdir(parents=True, exist_ok=True)
    key = _cache_key(data, size)
    pixels_path, meta_path = directory / f"{key}_{size}px.npy", directory / f"{key}_{size}px.json"
    if not (pixels_path.exists() and meta_path.exists()):
        _build_cache(data, size, pixels_path, meta_path, workers, verbose)
    meta = json.loads(meta_path.read_text())
    pixels = np.load(pixels_path, mmap_mode="r")
    if verbose:
        sample = min(len(pixels), 2000)
        started = time.perf_counter()
        np.array(pixels[:sample])
        seconds = max(time.perf_counter() - started, 1e-9)
        print(f"cache read: {sample} images in {seconds:.3f} s ({sample / seconds:,.0f} img/s) from {pixels_path}",
              file=sys.stderr)
    bad = set(meta["unreadable"])
    if bad:
        warnings.warn(f"dropped {len(bad)} unreadable image(s) from {data.root}: {sorted(bad)[:5]}", stacklevel=2)
        keep = [i for i, f in enumerate(data.files) if f not in bad]
        return DecodedImages(data.select(keep), pixels[keep])
    return DecodedImages(data, pixels)


def _build_cache(data: LabelledImages, size: int, pixels_path: Path, meta_path: Path, workers, verbose) -> None:
    from tqdm import tqdm

    tmp_path = pixels_path.with_suffix(f".{os.getpid()}.tmp.npy")
    pixels = np.lib.format.open_memmap(tmp_path, mode="w+", dtype=np.uint8, shape=(len(data), size, size, 3))
    unreadable = []
    workers = workers or min(16, os.cpu_count() or 1)
    started = time.perf_counter()
    jobs = [(path, size) for path in data.paths]
    try:
        # forkserver, not fork: a process that has loaded JAX or torch's thread pools must not fork (deadlocks)
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver")) as pool:
            results = pool.map(_decode_one, jobs, chunksize=64)
            for i, (array, error) in enumerate(tqdm(results, total=len(jobs), desc=f"decode {size}px", disable=not verbose,
                                                    file=sys.stderr)):
                if array is None:
                    unreadable.append(data.files[i])
                    warnings.warn(error, stacklevel=2)
                else:
                    pixels[i] = array
        pixels.flush()
        del pixels
        os.replace(tmp_path, pixels_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    atomic_write_json(meta_path, {"root": str(data.root), "size": size, "count": len(data), "unreadable": unreadable,
                                  "decode_seconds": seconds})
    if verbose:
        print(f"decode: {len(data)} images in {seconds:.1f} s ({len(data) / max(seconds, 1e-9):,.0f} img/s, {workers} workers)",
              file=sys.stderr)


class CachedBatches(torch.utils.data.Dataset):
    """Batch-level dataset over decoded pixels: ``ds[list_of_indices]`` returns a whole batch, so the
    loader does no per-image Python work. Use with ``DataLoader(ds, sampler=BatchSampler(...), batch_size=None)``."""

    def __init__(self, decoded: DecodedImages):
        self.pixels = decoded.pixels
        self.ages = torch.from_numpy(decoded.data.ages.astype(np.float32))
        self.genders = torch.from_numpy(decoded.data.genders.astype(np.float32))

    def __len__(self) -> int:
        return len(self.ages)

    def __getitem__(self, indices):
        order = np.sort(np.asarray(indices, dtype=np.int64))  # sorted reads are kinder to a memory-map
        images = torch.from_numpy(np.ascontiguousarray(self.pixels[order]))
        return images, self.ages[order], self.genders[order]
