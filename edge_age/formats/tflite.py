"""TFLite: batch 1, NHWC (a phone's layout), through litert-torch; fp32, fp16 and int8-dynamic (ai-edge-quantizer)
and full-integer int8 (PT2E, calibrated on real images); run here with ai-edge-litert. Every file carries the
``edge_age`` metadata record and the standard TFLITE_METADATA record (``tflite_metadata``)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_age.formats import OUTPUT_NAMES, Format, float_conversion, require
from edge_age.quiet import native_load_lines_hidden, quantizer_progress_hidden
from edge_age.runtimes import ModelFileError, Runner

if TYPE_CHECKING:
    from edge_age.registry import AgeGenderModel

# "int8" is full-integer (PT2E, calibrated); "int8-dynamic" is dynamic-range (int8 weights, float activations).
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")


def export_tflite(model: AgeGenderModel, precision: str, calibration: np.ndarray, path: Path, metadata: dict,
                  workdir: Path, int8_outputs: bool = False) -> None:
    """``int8_outputs``: the full-integer file's outputs become int8 too (for NPUs that take only integer
    tensors); see tflite_int8.INT8_OUTPUT_QUANTIZATION."""
    with native_load_lines_hidden():
        require("tflite", "litert_torch")
    if precision == "int8":
        from edge_age.formats.tflite_int8 import export_full_int8

        export_full_int8(model, calibration, path, int8_outputs)
    else:
        _tflite_float_or_dynamic(model, precision, path, workdir)
    embed_tflite_metadata(path, metadata)


def embed_tflite_metadata(path: Path, metadata: dict) -> None:
    """Add each metadata entry as a named buffer in the model's ``metadata`` table, readable with any
    flatbuffers TFLite reader (and by ``read_tflite_metadata``), plus the standard
    TFLITE_METADATA record built from the ``edge_age`` entry (``tflite_metadata``)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from edge_age.formats import tflite_metadata

    records = {name: text.encode("utf-8") for name, text in metadata.items()}
    records[tflite_metadata.RECORD_NAME] = tflite_metadata.build(json.loads(metadata["edge_age"]))

    raw = path.read_bytes()
    tflite_model = schema.ModelT.InitFromPackedBuf(raw, 0)
    for buffer in tflite_model.buffers:
        # ai-edge-quantizer stores weights after the flatbuffer (offset/size): bring them inline, or Pack drops them.
        if buffer.offset > 1:
            buffer.data = np.frombuffer(raw[buffer.offset:buffer.offset + buffer.size], dtype=np.uint8)
            buffer.offset, buffer.size = 0, 0
    tflite_model.metadata = [m for m in (tflite_model.metadata or []) if m.name.decode() not in records]
    for name, data in records.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        tflite_model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(tflite_model.buffers) - 1
        tflite_model.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(tflite_model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def _tflite_float_or_dynamic(model: AgeGenderModel, precision: str, path: Path, workdir: Path) -> None:
    litert_torch = require("tflite", "litert_torch")
    if precision not in ("fp32", "fp16", "int8-dynamic"):
        raise ValueError(f"TFLite precision {precision!r} is not one of {PRECISIONS}")

    def convert(fp32_path: Path) -> None:
        import torch

        from edge_age.formats.deploy import DeployModel

        size = model.input_spec.size
        sample = (torch.zeros(1, size, size, 3),)
        litert_torch.convert(DeployModel(model, channels_last_input=True).eval(), sample).export(str(fp32_path))

    fp32_path = float_conversion(workdir, "float.tflite", convert)
    if precision == "fp32":
        shutil.copyfile(fp32_path, path)
        return
    aeq_quantizer = require("tflite", "ai_edge_quantizer.quantizer")
    aeq_recipe = require("tflite", "ai_edge_quantizer.recipe")
    quantizer = aeq_quantizer.Quantizer(str(fp32_path))
    quantizer.load_quantization_recipe(_FP16_RECIPE if precision == "fp16" else aeq_recipe.dynamic_wi8_afp32())
    with quantizer_progress_hidden():  # its size/time report and bars are not an export's log
        quantized = quantizer.quantize(enable_progress_report=bool(os.environ.get("EDGE_AGE_VERBOSE")))
    quantized.export_model(str(path), overwrite=True)


# ai-edge-quantizer: weights cast to float16, computation in float32 (the classic "fp16 TFLite").
_FP16_RECIPE = [{
    "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
    "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"}, "compute_precision": "FLOAT",
                  "explicit_dequantize": True},
}]


class TFLiteRunner(Runner):
    """LiteRT interpreter; the file takes one NHWC image at a time (as a phone does)."""

    kind = "tflite"

    def __init__(self, path: str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.threads = threads
        try:
            with native_load_lines_hidden():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
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

    def embedded_metadata(self, path: Path) -> dict[str, str]:
        return read_tflite_metadata(path)

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


def tflite_op_counts(path: str | Path) -> dict[str, int]:
    """How many operators of each builtin type the file's graph holds (QUANTIZE/DEQUANTIZE at the edges of int8
    islands, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    tflite_model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    counts: dict[str, int] = {}
    for subgraph in tflite_model.subgraphs:
        for op in subgraph.operators:
            code = tflite_model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def xnnpack_partitions(path: str | Path) -> int:
    """How many partitions LiteRT's default CPU delegate (XNNPACK) makes of the file on this host: 1 means one
    delegated block; each further one is a hand-over to LiteRT's built-in kernels and back. Counted as the DELEGATE
    nodes in the interpreter's op list after delegation (``_get_ops_details``, the only place the Python API
    shows them)."""
    from ai_edge_litert.interpreter import Interpreter

    with native_load_lines_hidden():
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())


FORMAT = Format(name="tflite", suffix=".tflite", precisions=PRECISIONS, layout="NHWC", extra="tflite",
                export=export_tflite, runner=TFLiteRunner, export_options=("int8_outputs",), op_counts=tflite_op_counts,
                delegate_partitions=xnnpack_partitions,
                description="TFLite (batch 1, NHWC) via litert-torch; int8: full-integer trunk via PT2E")
