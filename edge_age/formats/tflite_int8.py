"""TFLite's full-integer int8 file: the model's trunk quantised through PT2E (calibrated on real images) and
lowered by litert-torch, its heads kept float. Apart from ``tflite`` so that running a .tflite file never loads
torch: only exporting one does."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

from edge_age.formats import OUTPUT_NAMES
from edge_age.formats.deploy import DeployModel, Trunk

if TYPE_CHECKING:
    from edge_age.registry import AgeGenderModel


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


aten = torch.ops.aten
CLAMPS = (aten.hardtanh.default, aten.hardtanh_.default)
CONVOLUTIONS = (aten.conv2d.default, aten.convolution.default)
ADDS = (aten.add.Tensor, aten.add_.Tensor)
# Ops that only move, pad or select values: their int8 output can use their input's grid unchanged (zero padding
# stays exact: an int8 PAD fills with the grid's zero point).
SAME_GRID_OPS = (aten.view.default, aten.reshape.default, aten.transpose.int, aten.permute.default,
                 aten.slice.Tensor, aten.pad.default, aten.constant_pad_nd.default, aten.max_pool2d.default,
                 aten.amax.default, aten.flatten.using_ints, aten.squeeze.dim, aten.unsqueeze.default)


def int8_trunk_quantizer():
    """litert-torch's PT2E quantizer, plus what it leaves in float in our trunks.

    Convolution + ReLU6: it annotates conv -> relu as one op whose int8 output is taken after the ReLU, but not
    conv -> ReLU6 (aten.hardtanh): there the convolution's output was quantised before the clamp, over its whole
    range, and the clamp shared that grid, so the values that pass the clamp kept a fraction of int8's resolution.
    EfficientNet-Lite (ReLU6 after every convolution) lost 0.8 years of MAE in its full-int8 file that way. With
    the clamp's output observed instead, the converter emits a CONV_2D with a fused RELU6 on the [0, 6] grid.

    Adds, concatenations and data movement: its add and concatenation annotators find those ops by their Python
    source (``operator.add``, ``torch.cat``), which ``torch.export`` no longer records, so every residual add
    stayed float between a DEQUANTIZE and a QUANTIZE (EfficientNet-Lite's 7 skip connections), and a
    concatenation was left to the converter, which gave it one input's scale without requantising the others
    (MA-SFV2's first full-int8 file lost a sixth of a stage's range; README, "Export"). Here adds get their own
    int8 grid, a concatenation's inputs share one grid (their producers write onto it, or a QUANTIZE requantises),
    and the ops of SAME_GRID_OPS take their input's grid: the trunk stays integer from the input to the pooled
    features, MA-SFV2's channel split, join and shuffle included.
    """
    from litert_torch.quantize import pt2e_quantizer, pt2e_quantizer_utils as utils
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    def annotated(node) -> bool:
        return "quantization_annotation" in node.meta and node.meta["quantization_annotation"]._annotated

    class Int8TrunkQuantizer(pt2e_quantizer.PT2EQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            self._annotate_conv_clamps(model)
            model = super().annotate(model)
            self._annotate_joins_and_moves(model)
            return model

        def _annotate_conv_clamps(self, model: torch.fx.GraphModule) -> None:
            for clamp in [n for n in model.graph.nodes if n.op == "call_function" and n.target in CLAMPS]:
                conv = clamp.args[0]
                if not (isinstance(conv, torch.fx.Node) and conv.op == "call_function" and conv.target in CONVOLUTIONS
                        and len(conv.users) == 1 and clamp.args[1:3] == (0.0, 6.0)):
                    continue
                inputs = {conv.args[0]: utils.get_input_act_qspec(self.global_config),
                          conv.args[1]: utils.get_weight_qspec(self.global_config)}
                partition = [clamp, conv, conv.args[1]]
                if len(conv.args) > 2 and isinstance(conv.args[2], torch.fx.Node):
                    inputs[conv.args[2]] = utils.get_bias_qspec(self.global_config)
                    partition.append(conv.args[2])
                if utils._is_annotated(partition):
                    continue
                conv.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
                clamp.meta["quantization_annotation"] = QuantizationAnnotation(
                    output_qspec=utils.get_output_act_qspec(self.global_config), _annotated=True)
                utils._mark_nodes_as_annotated(partition)

        def _annotate_joins_and_moves(self, model: torch.fx.GraphModule) -> None:
            for node in model.graph.nodes:  # graph order: a producer is annotated before its users
                if node.op != "call_function" or annotated(node):
                    continue
                inputs = [arg for arg in node.args[:2] if isinstance(arg, torch.fx.Node)]
                if node.target == aten.cat.default:
                    first, *others = node.args[0]
                    grid = SharedQuantizationSpec((first, node))
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={first: utils.get_input_act_qspec(self.global_config),
                                         **{other: grid for other in others}},
                        output_qspec=grid, _annotated=True)
                elif node.target in ADDS and len(inputs) == 2:
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={arg: utils.get_input_act_qspec(self.global_config) for arg in inputs},
                        output_qspec=utils.get_output_act_qspec(self.global_config), _annotated=True)
                elif node.target in SAME_GRID_OPS and inputs and annotated(inputs[0]) \
                        and inputs[0].meta["quantization_annotation"].output_qspec is not None:
                    grid = SharedQuantizationSpec(inputs[0])
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={inputs[0]: grid}, output_qspec=grid, _annotated=True)

    return Int8TrunkQuantizer()


def export_full_int8(model: AgeGenderModel, calibration: np.ndarray, path: Path, int8_outputs: bool = False) -> None:
    """Full-integer trunk through PT2E (calibrated on real images), float heads after it.

    LiteRT's int8 softmax and sigmoid demand an output scale of 1/256, which would wreck the 101-bin
    expectation and clip the regression output; the heads are a few thousand MACs, so they stay float.
    With ``int8_outputs`` only their two final values are rounded to int8.
    """
    import litert_torch
    from litert_torch.quantize import quant_config

    size = model.input_spec.size
    sample = (torch.zeros(1, size, size, 3),)
    images_nhwc = (np.ascontiguousarray(image.transpose(1, 2, 0)[None]) for image in calibration)
    trunk, quantizer = int8_trunk(Trunk(model, channels_last_input=True).eval(), sample, images_nhwc)
    combined = DeployModel(model, trunk=trunk).eval()
    if int8_outputs:
        combined = Int8Outputs(combined).eval()
    edge_model = litert_torch.convert(combined, sample, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    edge_model.export(str(path))


def int8_trunk(module: nn.Module, sample: tuple, calibration_nhwc) -> tuple[nn.Module, object]:
    """``module`` PT2E-quantised with int8_trunk_quantizer and calibrated on the given NHWC batches; returns it
    with the quantizer, which litert_torch.convert needs to lower it to int8 ops."""
    from litert_torch.quantize import pt2e_quantizer
    import torchao.quantization.pt2e as torchao_pt2e
    from torchao.quantization.pt2e import quantize_pt2e

    quantizer = int8_trunk_quantizer().set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    trunk = quantize_pt2e.prepare_pt2e(torch.export.export(module, sample).module(), quantizer)
    with torch.no_grad():
        for batch in calibration_nhwc:
            trunk(torch.from_numpy(batch))
    trunk = quantize_pt2e.convert_pt2e(trunk, fold_quantize=False)
    torchao_pt2e.allow_exported_model_train_eval(trunk)  # a wrapper's .eval() must not fail on it
    return trunk, quantizer
