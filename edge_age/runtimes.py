"""Run a model file in its own runtime: a PyTorch checkpoint, an .onnx file (onnxruntime) or a .tflite
file (ai-edge-litert). Every runner takes normalised float32 NCHW images and returns age in years and
P(female), so parity checks, the benchmark and ``predict`` treat all formats alike.

Core ML packages cannot run on Linux; ``open_runner`` says so instead of pretending.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# What every exported file returns, in this order (export.formats.DeployModel).
OUTPUT_NAMES = ["age", "gender"]


class ModelFileError(ValueError):
    """A model file is missing, of an unknown kind, truncated, or not what its name says."""


class Runner:
    """Callable: float32 N x 3 x S x S (normalised) -> (age (N,), P(female) (N,))."""

    kind = ""
    threads: int | None = None

    def __call__(self, images_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


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


class OnnxRunner(Runner):
    kind = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise ModelFileError(f"{path}: onnxruntime cannot load it ({type(err).__name__}: {str(err)[:300]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = self.session.get_inputs()[0].type

    def __call__(self, images_nchw):
        dtype = np.float16 if "float16" in self.input_type else np.float32
        age, gender = self.session.run(["age", "gender"], {self.input_name: images_nchw.astype(dtype)})
        return np.asarray(age, np.float32).reshape(-1), np.asarray(gender, np.float32).reshape(-1)


class TFLiteRunner(Runner):
    """LiteRT interpreter; the file takes one NHWC image at a time (as a phone does)."""

    kind = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.threads = threads
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as err:
            raise ModelFileError(f"{path}: LiteRT cannot load it ({type(err).__name__}: {str(err)[:300]})") from None
        self.input = self.interpreter.get_input_details()[0]
        # litert-torch names outputs output_0, output_1 in the order forward returns them: age, gender.
        self.outputs = sorted(self.interpreter.get_output_details(), key=lambda d: d["name"])
        if len(self.outputs) != 2:
            raise ModelFileError(f"{path}: expected 2 outputs (age, gender), found {len(self.outputs)}")
        shape = self.input["shape"]
        self.channels_last = shape[-1] == 3

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float NHWC input -> the file's input dtype (int8 files: round(x / scale + zero_point), clipped)."""
        scale, zero = self.input["quantization"]
        if self.input["dtype"] in (np.int8, np.uint8) and scale:
            info = np.iinfo(self.input["dtype"])
            return np.clip(np.round(x / scale + zero), info.min, info.max).astype(self.input["dtype"])
        return x.astype(self.input["dtype"])

    @staticmethod
    def dequantize(detail, value: np.ndarray) -> np.ndarray:
        scale, zero = detail["quantization"]
        if detail["dtype"] in (np.int8, np.uint8) and scale:
            return (value.astype(np.float32) - zero) * scale
        return value.astype(np.float32)

    def tensor_specs(self) -> dict:
        """Each tensor's dtype, scale and zero point, as the export and app manifests record them: an app feeding
        or reading int8 tensors needs them."""
        return {"input_tensor": _tensor_spec(self.input),
                "output_tensors": {name: _tensor_spec(d) for name, d in zip(OUTPUT_NAMES, self.outputs)}}

    def run_raw(self, tensor: np.ndarray) -> list[np.ndarray]:
        """One invocation on an input already in the file's dtype; the outputs as stored (age, gender)."""
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(tensor))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self.outputs]

    def __call__(self, images_nchw):
        ages, genders = [], []
        for image in images_nchw:
            x = image.transpose(1, 2, 0)[None] if self.channels_last else image[None]
            age, gender = (self.dequantize(d, v) for d, v in zip(self.outputs, self.run_raw(self.quantize_input(x))))
            ages.append(age.reshape(-1)[0])
            genders.append(gender.reshape(-1)[0])
        return np.array(ages, np.float32), np.array(genders, np.float32)


def _tensor_spec(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {"dtype": np.dtype(detail["dtype"]).name, "scale": float(scale), "zero_point": int(zero_point)}


RUNNERS = {".pt": TorchRunner, ".pth": TorchRunner, ".onnx": OnnxRunner, ".tflite": TFLiteRunner}


def open_runner(path: str | Path, threads: int | None = None) -> Runner:
    """Pick the runtime from the file's suffix; refuse clearly what cannot run here."""
    path = Path(path)
    if path.suffix == ".mlpackage":
        raise ModelFileError(f"{path}: Core ML packages run only on Apple platforms; use the .onnx or .tflite file here")
    if path.suffix not in RUNNERS:
        raise ModelFileError(f"{path}: unknown model file type {path.suffix!r}; expected .pt, .onnx or .tflite")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        return RUNNERS[path.suffix](path, threads)
    except (FileNotFoundError, ValueError) as err:
        raise ModelFileError(str(err)) from None


def normalise_pixels(pixels_nhwc: np.ndarray, mean, std) -> np.ndarray:
    """uint8 N x S x S x 3 -> float32 N x 3 x S x S: x/255 then (x - mean) / std, as a model's input spec says.
    numpy only, so a runtime's process need not load torch."""
    x = np.asarray(pixels_nhwc, np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def tflite_metadata_records(path: str | Path) -> dict[str, bytes]:
    """Every named record in a .tflite file's metadata table, as bytes."""
    from ai_edge_litert import schema_py_generated as schema

    tflite_model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    return {entry.name.decode(): bytes(np.asarray(tflite_model.buffers[entry.buffer].data, dtype=np.uint8))
            for entry in tflite_model.metadata or []}


def read_tflite_metadata(path: str | Path) -> dict[str, str]:
    """The text records of a .tflite file's metadata table (binary ones, like TFLITE_METADATA, skipped)."""
    found = {}
    for name, data in tflite_metadata_records(path).items():
        if name == "TFLITE_METADATA":
            continue
        try:
            found[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return found


def describe_model_file(path: Path, runner: Runner) -> dict:
    """What the file says about itself (model, input spec, outputs): the checkpoint's config, the ``edge_age``
    metadata an export embeds in .onnx/.tflite files, or else the manifest.json beside the file."""
    if isinstance(runner, TorchRunner):
        model = runner.checkpoint["model"]
        return {"model": {k: model[k] for k in ("name", "options")}, "input": model["input_spec"]}
    embedded = None
    if isinstance(runner, OnnxRunner):
        embedded = runner.session.get_modelmeta().custom_metadata_map.get("edge_age")
    elif isinstance(runner, TFLiteRunner):
        embedded = read_tflite_metadata(path).get("edge_age")
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
