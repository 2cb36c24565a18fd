"""Run a model file in its own runtime: a PyTorch checkpoint here, every export format through its module in
edge_age/formats (onnxruntime, ai-edge-litert). Every runner takes normalised float32 NCHW images and returns
age in years and P(female), so parity checks, the benchmark and ``predict`` treat all formats alike.

A format whose files cannot run here (Core ML on Linux) says so instead of pretending.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

class ModelFileError(ValueError):
    """A model file is missing, of an unknown kind, truncated, or not what its name says."""


class Runner:
    """Callable: float32 N x 3 x S x S (normalised) -> (age (N,), P(female) (N,)). One subclass per runtime; the
    format modules (edge_age/formats) define theirs."""

    kind = ""
    threads: int | None = None

    def __call__(self, images_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def embedded_metadata(self, path: Path) -> dict[str, str]:
        """The text metadata records the file carries (an export embeds its input spec as "edge_age")."""
        return {}


class TorchRunner(Runner):
    kind = "pytorch"

    def __init__(self, path: str | Path, threads: int | None = None):
        import torch

        from edge_age.checkpoint import load_model

        self.model, self.checkpoint = load_model(path)
        self.threads = threads
        if threads:
            torch.set_num_threads(threads)

    def __call__(self, images_nchw):
        import torch

        with torch.no_grad():
            out = self.model(torch.from_numpy(np.ascontiguousarray(images_nchw, dtype=np.float32)))
        return out["age"].numpy(), torch.sigmoid(out["gender_logit"]).numpy()


def open_runner(path: str | Path, threads: int | None = None) -> Runner:
    """Pick the runtime from the file's suffix (a checkpoint, or a format of the table); refuse clearly what cannot
    run here."""
    from edge_age import formats

    path = Path(path)
    fmt = formats.by_suffix(path.suffix)
    if path.suffix in (".pt", ".pth"):
        runner_class = TorchRunner
    elif fmt is None:
        known = ", ".join([".pt", *(f.suffix for f in formats.formats().values())])
        raise ModelFileError(f"{path}: unknown model file type {path.suffix!r}; expected one of {known}")
    elif fmt.runner is None:
        raise ModelFileError(f"{path}: {fmt.not_runnable_because}; use another format's file here")
    else:
        runner_class = fmt.runner
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return runner_class(path, threads)
    except (FileNotFoundError, ValueError) as err:
        raise ModelFileError(str(err)) from None


def normalise_pixels(pixels_nhwc: np.ndarray, mean, std) -> np.ndarray:
    """uint8 N x S x S x 3 -> float32 N x 3 x S x S: x/255 then (x - mean) / std, as a model's input spec says.
    numpy only, so a runtime's process need not load torch."""
    x = np.asarray(pixels_nhwc, np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def describe_model_file(path: Path, runner: Runner) -> dict:
    """What the file says about itself (model, input spec, outputs): the checkpoint's config, the ``edge_age``
    metadata an export embeds in .onnx/.tflite files, or else the manifest.json beside the file."""
    if isinstance(runner, TorchRunner):
        model = runner.checkpoint["model"]
        return {"model": {k: model[k] for k in ("name", "options")}, "input": model["input_spec"]}
    embedded = runner.embedded_metadata(path).get("edge_age")
    if embedded:
        return json.loads(embedded)
    listed = _listing_manifest(path)
    if listed is not None:
        return {"model": listed.model, "input": listed.input, "outputs": listed.header.get("outputs", [])}
    raise ModelFileError(f"{path}: carries no edge-age metadata (input size, normalisation) and no manifest.json "
                         "beside it lists it; export it with `edge-age export` or keep its manifest.json with it")


@dataclass
class ModelFile:
    """A model file ready to use on face chips: its runner plus the preprocessing the file itself describes."""

    path: Path
    runner: Runner
    description: dict

    @property
    def size(self) -> int:
        return int(self.description["input"]["size"])

    @property
    def name(self) -> str:
        return self.description.get("model", {}).get("name", self.path.stem)

    def predict(self, pixels_uint8_nhwc: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """uint8 N x size x size x 3 RGB chips -> (age in years, P(female))."""
        spec = self.description["input"]
        ages, genders = [np.zeros(0, np.float32)], [np.zeros(0, np.float32)]
        for start in range(0, len(pixels_uint8_nhwc), chunk):
            age, gender = self.runner(normalise_pixels(pixels_uint8_nhwc[start:start + chunk], spec["mean"], spec["std"]))
            ages.append(age)
            genders.append(gender)
        return np.concatenate(ages), np.concatenate(genders)


def _listing_manifest(path: Path):
    """The export manifest beside ``path`` if it lists this file, else None (a lone file, or another manifest)."""
    from edge_age.manifest import NAME, ManifestError, read_manifest

    if not (path.parent / NAME).is_file():
        return None
    try:
        manifest = read_manifest(path.parent)
    except ManifestError:
        return None
    return manifest if any(e.file == path.name for e in manifest.files) else None


def verify_listed_file(path: Path) -> None:
    """A file that an export manifest beside it lists must still be the file it describes (size, sha256)."""
    manifest = _listing_manifest(path)
    if manifest is not None:
        entry = next(e for e in manifest.files if e.file == path.name)
        problem = manifest.verify(entry)
        if problem:
            raise ModelFileError(f"{path}: {problem} (checked against {path.parent / 'manifest.json'})")


def open_model_file(path: str | Path, threads: int | None = None) -> ModelFile:
    """A checkpoint, .onnx or .tflite file, its runtime chosen from the suffix and its preprocessing from itself.
    A file listed by the export manifest beside it is checked against its sha256 first."""
    path = Path(path)
    if path.is_file():
        verify_listed_file(path)
    runner = open_runner(path, threads)
    try:
        description = describe_model_file(path, runner)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelFileError(f"{path}: its edge-age metadata is unreadable ({type(err).__name__}: {err})") from None
    if "input" not in description or "size" not in description["input"]:
        raise ModelFileError(f"{path}: its metadata names no input size")
    return ModelFile(path, runner, description)
