"""One function per format: PyTorch model -> file. Parity, metadata and the manifest live in exporter.py.

Every exported file computes ``DeployModel``: a normalised image in, (age in years, P(female)) out.
ONNX takes NCHW with a dynamic batch; TFLite takes one NHWC image (the phone's layout); Core ML takes
NCHW batch 1 (an image input where the normalisation allows it).
"""
from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_age.registry import AgeGenderModel
from edge_age.runtimes import OUTPUT_NAMES

# Precisions each format offers. TFLite "int8" is full-integer (PT2E, calibrated); "int8-dynamic" is
# dynamic-range (int8 weights, float activations). Core ML "int8" quantises weights only.
PRECISIONS = {
    "onnx": ["fp32", "fp16", "int8"],
    "tflite": ["fp32", "fp16", "int8-dynamic", "int8"],
    "coreml": ["fp16", "int8"],
}
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "coreml": ".mlpackage"}
EXTRA_FOR = {"onnx": "onnx", "tflite": "tflite", "coreml": "coreml"}


class Trunk(nn.Module):
    """The model's feature trunk, optionally taking NHWC input (TFLite's layout)."""

    def __init__(self, model: AgeGenderModel, channels_last_input: bool = False):
        super().__init__()
        self.model = model
        self.channels_last_input = channels_last_input

    def forward(self, x):
        if self.channels_last_input:
            x = x.permute(0, 3, 1, 2)
        return self.model.forward_features(x)


class DeployModel(nn.Module):
    """What ships: normalised image -> (age in years, P(female)), each of shape (N,).

    ``trunk`` replaces the float trunk (the full-int8 TFLite file passes a PT2E-quantised one).
    """

    def __init__(self, model: AgeGenderModel, channels_last_input: bool = False, trunk: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.trunk = trunk if trunk is not None else Trunk(model, channels_last_input)

    def forward(self, x):
        out = self.model.forward_head(self.trunk(x))
        return out["age"], torch.sigmoid(out["gender_logit"])


def require(extra: str, module: str):
    """Import an optional dependency or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed ({err}); install it with: pip install -e \".[{extra}]\"") from None


# ---------------------------------------------------------------- ONNX

def export_onnx(model: AgeGenderModel, precision: str, calibration: np.ndarray, path: Path, metadata: dict) -> None:
    onnx = require("onnx", "onnx")
    size = model.input_spec.size
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        torch.onnx.export(DeployModel(model).eval(), (torch.zeros(1, 3, size, size),), str(fp32_path),
                          input_names=["image"], output_names=OUTPUT_NAMES,
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False,
                          external_data=False)
        proto = onnx.load(str(fp32_path))
        if precision == "fp16":
            float16 = require("onnx", "onnxconverter_common.float16")
            proto = float16.convert_float_to_float16(proto, keep_io_types=True)
        elif precision == "int8":
            proto = _onnx_static_int8(fp32_path, calibration, Path(tmp))
        elif precision != "fp32":
            raise ValueError(f"ONNX precision {precision!r} is not one of {PRECISIONS['onnx']}")
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))


def _onnx_static_int8(fp32_path: Path, calibration: np.ndarray, tmp: Path):
    """Static QDQ int8, per-channel weights, calibrated on real training images (onnxruntime.quantization)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": calibration[i:i + 16]} for i in range(0, len(calibration), 16)])

        def get_next(self):
            return next(self.batches, None)

    prepared, quantized = tmp / "prepared.onnx", tmp / "int8.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    # Only convolutions and matrix products: softmax, sigmoid and the expectation stay in float.
    # reduce_range (7-bit weights): on x86 CPUs with AVX2/AVX-512 but no VNNI, onnxruntime's int8 kernels add
    # pairs of u8 x s8 products in 16 bits and saturate; measured on the coursework-a custom CNN (AVX2, no VNNI):
    # without it the age changed by up to 22.9 years (MAE +0.77), with it by at most 2.8 (MAE -0.02).
    quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                    nodes_to_exclude=_onnx_head_nodes(prepared))
    return onnx.load(str(quantized))


def _onnx_head_nodes(path: Path) -> list[str]:
    """Nodes of the output heads (kept float, like the TFLite full-int8 file)."""
    import onnx

    heads = ("age_head", "gender_head", "last_fc", "model.fc", "/fc/")
    return [n.name for n in onnx.load(str(path)).graph.node if any(h in n.name for h in heads)]


# ---------------------------------------------------------------- TFLite

def export_tflite(model: AgeGenderModel, precision: str, calibration: np.ndarray, path: Path, metadata: dict,
                  int8_outputs: bool = False) -> None:
    """``int8_outputs``: the full-integer file's outputs become int8 too (for NPUs that take only integer
    tensors); see INT8_OUTPUT_QUANTIZATION."""
    require("tflite", "litert_torch")
    size = model.input_spec.size
    sample = (torch.zeros(1, size, size, 3),)
    if precision == "int8":
        _tflite_full_int8(model, calibration, path, int8_outputs)
    else:
        _tflite_float_or_dynamic(model, precision, sample, path)
    embed_tflite_metadata(path, metadata)


def embed_tflite_metadata(path: Path, metadata: dict) -> None:
    """Add each metadata entry as a named buffer in the model's ``metadata`` table, readable with any
    flatbuffers TFLite reader (and by ``edge_age.runtimes.read_tflite_metadata``), plus the standard
    TFLITE_METADATA record built from the ``edge_age`` entry (export/tflite_metadata.py)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from export import tflite_metadata

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


def _tflite_float_or_dynamic(model: AgeGenderModel, precision: str, sample: tuple, path: Path) -> None:
    litert_torch = require("tflite", "litert_torch")
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.tflite"
        litert_torch.convert(DeployModel(model, channels_last_input=True).eval(), sample).export(str(fp32_path))
        if precision == "fp32":
            shutil.copyfile(fp32_path, path)
        elif precision in ("fp16", "int8-dynamic"):
            aeq_quantizer = require("tflite", "ai_edge_quantizer.quantizer")
            aeq_recipe = require("tflite", "ai_edge_quantizer.recipe")
            quantizer = aeq_quantizer.Quantizer(str(fp32_path))
            quantizer.load_quantization_recipe(_FP16_RECIPE if precision == "fp16" else aeq_recipe.dynamic_wi8_afp32())
            quantizer.quantize().export_model(str(path), overwrite=True)
        else:
            raise ValueError(f"TFLite precision {precision!r} is not one of {PRECISIONS['tflite']}")


# ai-edge-quantizer: weights cast to float16, computation in float32 (the classic "fp16 TFLite").
_FP16_RECIPE = [{
    "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
    "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"}, "compute_precision": "FLOAT",
                  "explicit_dequantize": True},
}]


# Fixed int8 grids for the two outputs when an int8 file's outputs are int8 too: age in half years over
# 0..127.5 (rounding moves an answer by at most 0.25 y), P(female) in steps of 1/255 over 0..1.
INT8_OUTPUT_QUANTIZATION = {"age": (0.5, -128), "gender": (1 / 255, -128)}


class Int8Outputs(nn.Module):
    """Rounds each output onto its INT8_OUTPUT_QUANTIZATION grid (a quantize/dequantize pair); the converter
    turns the pair at the end of the graph into an int8 output tensor with that scale and zero point."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        ops = torch.ops.quantized_decomposed
        rounded = []
        for name, value in zip(OUTPUT_NAMES, self.inner(x)):
            scale, zero_point = INT8_OUTPUT_QUANTIZATION[name]
            q = ops.quantize_per_tensor(value, scale, zero_point, -128, 127, torch.int8)
            rounded.append(ops.dequantize_per_tensor(q, scale, zero_point, -128, 127, torch.int8))
        return tuple(rounded)


def padded_channel_sum(parts: list[torch.Tensor]) -> torch.Tensor:
    """The same tensor as concatenating ``parts`` along channels, built as zero-padded parts added together.
    litert-torch's full-int8 lowering gives a concatenation one input's scale and drops the other inputs'
    requantisation, so their values are clipped (an MA-SFV2 stage output lost about a sixth of its range);
    an int8 ADD requantises each input correctly."""
    total = sum(part.shape[1] for part in parts)
    joined, start = None, 0
    for part in parts:
        width = part.shape[1]
        padded = torch.nn.functional.pad(part, (0, 0, 0, 0, start, total - start - width))
        joined = padded if joined is None else joined + padded
        start += width
    return joined


@contextlib.contextmanager
def _int8_safe_channel_joins(model: nn.Module):
    """While the graph is captured, modules that join channel groups (a ``join_channels`` attribute, e.g.
    MA-SFV2's ShuffleNet units) use padded_channel_sum instead of a concatenation."""
    units = [module for module in model.modules() if hasattr(module, "join_channels")]
    saved = [unit.join_channels for unit in units]
    for unit in units:
        unit.join_channels = padded_channel_sum
    try:
        yield
    finally:
        for unit, join in zip(units, saved):
            unit.join_channels = join


def _tflite_full_int8(model: AgeGenderModel, calibration: np.ndarray, path: Path, int8_outputs: bool = False) -> None:
    """Full-integer trunk through PT2E (calibrated on real images), float heads after it.

    LiteRT's int8 softmax and sigmoid demand an output scale of 1/256, which would wreck the 101-bin
    expectation and clip the regression output; the heads are a few thousand MACs, so they stay float.
    With ``int8_outputs`` only their two final values are rounded to int8.
    """
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    import torchao.quantization.pt2e as torchao_pt2e
    from torchao.quantization.pt2e import quantize_pt2e

    size = model.input_spec.size
    sample = (torch.zeros(1, size, size, 3),)
    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(config)
    with _int8_safe_channel_joins(model):
        trunk = torch.export.export(Trunk(model, channels_last_input=True).eval(), sample).module()
    trunk = quantize_pt2e.prepare_pt2e(trunk, quantizer)
    with torch.no_grad():
        for image in calibration:
            trunk(torch.from_numpy(np.ascontiguousarray(image.transpose(1, 2, 0)[None])))
    trunk = quantize_pt2e.convert_pt2e(trunk, fold_quantize=False)
    torchao_pt2e.allow_exported_model_train_eval(trunk)  # the wrapper's .eval() must not fail on it
    combined = DeployModel(model, trunk=trunk).eval()
    if int8_outputs:
        combined = Int8Outputs(combined).eval()
    edge_model = litert_torch.convert(combined, sample, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    edge_model.export(str(path))


# ---------------------------------------------------------------- Core ML

def export_coreml(model: AgeGenderModel, precision: str, calibration: np.ndarray, path: Path, metadata: dict) -> None:
    ct = require("coreml", "coremltools")
    spec = model.input_spec
    size = spec.size
    exported = torch.export.export(DeployModel(model).eval(), (torch.zeros(1, 3, size, size),)).run_decompositions({})
    if len(set(spec.std)) == 1 and len(set(spec.mean)) == 1:
        # One scale for all channels: Core ML can take the camera image directly and normalise itself.
        scale = 1.0 / (255.0 * spec.std[0])
        model_input = ct.ImageType(name="image", shape=(1, 3, size, size), scale=scale,
                                   bias=[-m / spec.std[0] for m in spec.mean], color_layout=ct.colorlayout.RGB)
    else:
        model_input = ct.TensorType(name="image", shape=(1, 3, size, size))
    mlmodel = ct.convert(exported, inputs=[model_input], outputs=[ct.TensorType(name=n) for n in OUTPUT_NAMES],
                         convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                         minimum_deployment_target=ct.target.iOS16, skip_model_load=True)
    if precision == "int8":
        optimize = ct.optimize.coreml
        config = optimize.OptimizationConfig(global_config=optimize.OpLinearQuantizerConfig(mode="linear_symmetric"))
        mlmodel = optimize.linear_quantize_weights(mlmodel, config=config)
    elif precision != "fp16":
        raise ValueError(f"Core ML precision {precision!r} is not one of {PRECISIONS['coreml']}")
    info = json.loads(metadata["edge_age"])
    mlmodel.short_description = f"edge-age {info['model']['name']}: age in years and P(female) from a face crop"
    mlmodel.input_description["image"] = (f"RGB face crop {size}x{size}; " +
                                          ("pixels 0-255 (normalised inside)" if isinstance(model_input, ct.ImageType)
                                           else f"x/255 then (x-{list(spec.mean)})/{list(spec.std)}, NCHW"))
    mlmodel.output_description["age"] = "age in years"
    mlmodel.output_description["gender"] = "probability that the face is female"
    mlmodel.user_defined_metadata.update(metadata)
    mlmodel.save(str(path))


EXPORTERS = {"onnx": export_onnx, "tflite": export_tflite, "coreml": export_coreml}
