"""ONNX: dynamic batch, NCHW; fp32, fp16 (onnxconverter-common) and static int8 (onnxruntime.quantization);
run here with onnxruntime."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_age.formats import OUTPUT_NAMES, Format, float_conversion, require
from edge_age.runtimes import ModelFileError, Runner

if TYPE_CHECKING:
    from edge_age.registry import AgeGenderModel

PRECISIONS = ("fp32", "fp16", "int8")


def export_onnx(model: AgeGenderModel, precision: str, calibration: np.ndarray, path: Path, metadata: dict,
                workdir: Path) -> None:
    onnx = require("onnx", "onnx")
    size = model.input_spec.size

    def convert(fp32_path: Path) -> None:
        import torch

        from edge_age.formats.deploy import DeployModel

        torch.onnx.export(DeployModel(model).eval(), (torch.zeros(1, 3, size, size),), str(fp32_path),
                          input_names=["image"], output_names=OUTPUT_NAMES,
                          dynamic_shapes={"x": {0: torch.export.Dim("batch")}}, dynamo=True, verbose=False,
                          external_data=False)

    fp32_path = float_conversion(workdir, "float.onnx", convert)
    with tempfile.TemporaryDirectory() as tmp:
        proto = onnx.load(str(fp32_path))
        if precision == "fp16":
            float16 = require("onnx", "onnxconverter_common.float16")
            with warnings.catch_warnings():
                # "the float32 number 3.9e-08 will be truncated to 1e-07": weights below fp16's range, once per
                # weight; the parity check judges the file that results
                warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
                proto = float16.convert_float_to_float16(proto, keep_io_types=True)
        elif precision == "int8":
            proto = _onnx_static_int8(fp32_path, calibration, Path(tmp), model)
        elif precision != "fp32":
            raise ValueError(f"ONNX precision {precision!r} is not one of {PRECISIONS}")
        _drop_stack_traces(proto.graph)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))


def _drop_stack_traces(graph) -> None:
    """torch.onnx stores each node's Python stack trace, with the file paths of the machine that exported it, in
    the file; a model that ships carries none of them (the module names in name_scopes stay)."""
    for node in graph.node:
        kept = [prop for prop in node.metadata_props if prop.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs] if attribute.HasField("g") else attribute.graphs:
                _drop_stack_traces(subgraph)


def _onnx_static_int8(fp32_path: Path, calibration: np.ndarray, tmp: Path, model: AgeGenderModel):
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
    # Convolutions and matrix products; their ReLU/ReLU6 (Clip) are listed too so that onnxruntime fuses each into
    # its convolution and quantises the activation's output, not the wider range before it (EfficientNet-Lite's
    # ReLU6 after every convolution cost 1.4 years of MAE otherwise). The heads (age readings included) stay float. Adds,
    # concatenations, attention products and sigmoids quantised as well ran 4-7% faster here but doubled
    # MA-SFV2's mean per-face age change (0.38 -> 0.65 years, 500 faces): left float.
    # Activations are u8, weights s8: onnxruntime's x86 int8 kernels multiply u8 x s8 (the AVX2/VNNI instruction
    # form). s8 activations compute the same numbers (same calibrated grid, shifted zero point) but ran slower here:
    # one thread, AVX-512 VNNI, fp32/int8 time 0.87x (s8) against 1.35x (u8) for MA-SFV2, 2.0x against 2.7x for the
    # custom CNN, 1.2x against 2.2x for EfficientNet-Lite0 (2026-12-04).
    # reduce_range (7-bit weights): on x86 CPUs with AVX2/AVX-512 but no VNNI, onnxruntime's int8 kernels add
    # pairs of u8 x s8 products in 16 bits and saturate; measured on the coursework-a custom CNN (AVX2, no VNNI):
    # without it the age changed by up to 22.9 years (MAE +0.77), with it by at most 2.8 (MAE -0.02).
    quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm", "Relu", "Clip"],
                    nodes_to_exclude=_onnx_head_nodes(fp32_path, model))
    return onnx.load(str(quantized))


def _onnx_head_nodes(path: Path, model: AgeGenderModel) -> list[str]:
    """Nodes of the model's output heads (``model.head_modules``), kept float like the TFLite full-int8 file. The
    exporter records each node's module path in its ``pkg.torch.onnx.name_scopes`` metadata (node names are
    generic: node_linear_2). A model whose heads cannot be found is an error, never silently quantised whole."""
    import onnx

    scopes = {f"model.{head}" for head in model.head_modules}
    found = []
    for node in onnx.load(str(path)).graph.node:
        recorded = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        if any(f"'{scope}'" in recorded for scope in scopes):
            found.append(node.name)
    if not found:
        raise ValueError(f"none of {model.model_name}'s head modules {model.head_modules} appear in the ONNX graph's "
                         "name scopes; cannot keep the heads in float")
    return found


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

    def embedded_metadata(self, path: Path) -> dict[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, images_nchw):
        dtype = np.float16 if "float16" in self.input_type else np.float32
        age, gender = self.session.run(["age", "gender"], {self.input_name: images_nchw.astype(dtype)})
        return np.asarray(age, np.float32).reshape(-1), np.asarray(gender, np.float32).reshape(-1)


def onnx_op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each op type the graph holds (QuantizeLinear/DequantizeLinear pairs around each int8 op)."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


# onnxruntime's kernels (after its optimiser: fused, QLinear*, NCHWc and NHWC forms) by the kind of work they do.
_OP_KINDS = {
    "quantise/dequantise": {"QuantizeLinear", "DequantizeLinear"},
    "layout and joins": {"Transpose", "Reshape", "ReorderInput", "ReorderOutput", "Concat", "QLinearConcat", "Split",
                         "Slice", "Squeeze", "Unsqueeze", "Flatten"},
    "pooling and reductions": {"ReduceMean", "ReduceMax", "ReduceSum", "GlobalAveragePool", "QLinearGlobalAveragePool",
                               "MaxPool", "NhwcMaxPool", "AveragePool", "QLinearAveragePool"},
    "matrix products": {"Gemm", "MatMul", "QGemm", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul"},
}
_CONVOLUTIONS = {"Conv", "FusedConv", "QLinearConv", "NhwcConv", "NhwcFusedConv", "ConvInteger"}


def _op_kind(node) -> str:
    import onnx

    if node.op_type in _CONVOLUTIONS:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attributes.get("group", 1) > 1:
            return "convolution, depthwise"
        return "convolution, 1x1" if attributes.get("kernel_shape") == [1, 1] else "convolution, other"
    return next((kind for kind, ops in _OP_KINDS.items() if node.op_type in ops), "elementwise and other")


def onnx_time_by_op_kind(path: str | Path, threads: int, runs: int) -> dict[str, float]:
    """Microseconds per batch-1 call spent in each kind of kernel (``_op_kind``), from onnxruntime's own profiler:
    where an int8 file saves time over its fp32 one and where it does not. The profiler times every node, which
    adds its own cost to small ones: compare shares and ratios, and take latencies from the unprofiled timing."""
    import json
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.optimized_model_filepath = str(Path(tmp) / "optimised.onnx")
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "profile")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        kinds = {node.name: _op_kind(node) for node in onnx.load(options.optimized_model_filepath).graph.node}
        image = session.get_inputs()[0]
        size = image.shape[-1]
        feed = {image.name: np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)}
        if "float16" in image.type:
            feed[image.name] = feed[image.name].astype(np.float16)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kind = kinds.get(event["name"].removesuffix("_kernel_time"), "elementwise and other")
            totals[kind] = totals.get(kind, 0.0) + event["dur"]
    return {kind: microseconds / runs for kind, microseconds in sorted(totals.items(), key=lambda item: -item[1])}


FORMAT = Format(name="onnx", suffix=".onnx", precisions=PRECISIONS, layout="NCHW", extra="onnx", export=export_onnx,
                runner=OnnxRunner, op_counts=onnx_op_counts, time_by_op_kind=onnx_time_by_op_kind,
                notes={"dynamic_batch": True},
                description="ONNX (dynamic batch, NCHW); int8: static QDQ, u8 activations, per-channel s8 weights, "
                            "calibrated on real images")
