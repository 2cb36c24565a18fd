"""Core ML: an ML program package (fp16; int8 weights through coremltools.optimize), NCHW batch 1, an image input
where one scale fits all channels. Core ML runs only on Apple platforms: on Linux its package is checked for
structure (loads as a spec, names, shapes, quantised ops), and numeric parity is left to macOS."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_age.formats import OUTPUT_NAMES, Format, float_conversion, require
from edge_age.quiet import coreml_progress_hidden

if TYPE_CHECKING:
    from edge_age.registry import AgeGenderModel

PRECISIONS = ("fp16", "int8")


def export_coreml(model: AgeGenderModel, precision: str, calibration: np.ndarray, path: Path, metadata: dict,
                  workdir: Path) -> None:
    ct = require("coreml", "coremltools")
    spec = model.input_spec
    size = spec.size
    if len(set(spec.std)) == 1 and len(set(spec.mean)) == 1:
        # One scale for all channels: Core ML can take the camera image directly and normalise itself.
        scale = 1.0 / (255.0 * spec.std[0])
        model_input = ct.ImageType(name="image", shape=(1, 3, size, size), scale=scale,
                                   bias=[-m / spec.std[0] for m in spec.mean], color_layout=ct.colorlayout.RGB)
    else:
        model_input = ct.TensorType(name="image", shape=(1, 3, size, size))
    if precision not in PRECISIONS:
        raise ValueError(f"Core ML precision {precision!r} is not one of {PRECISIONS}")

    def convert(fp16_path: Path) -> None:
        import torch

        from edge_age.formats.deploy import DeployModel

        exported = torch.export.export(DeployModel(model).eval(), (torch.zeros(1, 3, size, size),)).run_decompositions({})
        with coreml_progress_hidden():
            ct.convert(exported, inputs=[model_input], outputs=[ct.TensorType(name=n) for n in OUTPUT_NAMES],
                       convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                       minimum_deployment_target=ct.target.iOS16, skip_model_load=True).save(str(fp16_path))

    fp16_path = float_conversion(workdir, "float16.mlpackage", convert)
    with coreml_progress_hidden():
        mlmodel = ct.models.MLModel(str(fp16_path), skip_model_load=True)
        if precision == "int8":
            optimize = ct.optimize.coreml
            config = optimize.OptimizationConfig(global_config=optimize.OpLinearQuantizerConfig(mode="linear_symmetric"))
            mlmodel = optimize.linear_quantize_weights(mlmodel, config=config)
    info = json.loads(metadata["edge_age"])
    mlmodel.short_description = f"edge-age {info['model']['name']}: age in years and P(female) from a face crop"
    mlmodel.input_description["image"] = (f"RGB face crop {size}x{size}; " +
                                          ("pixels 0-255 (normalised inside)" if isinstance(model_input, ct.ImageType)
                                           else f"x/255 then (x-{list(spec.mean)})/{list(spec.std)}, NCHW"))
    mlmodel.output_description["age"] = "age in years"
    mlmodel.output_description["gender"] = "probability that the face is female"
    mlmodel.user_defined_metadata.update(metadata)
    mlmodel.save(str(path))


def check_coreml(path: Path, precision: str, size: int) -> dict:
    """What Linux can check of a Core ML package: it loads as a spec, its names and shapes, quantised ops."""
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    inputs = {i.name: i for i in spec.description.input}
    outputs = [o.name for o in spec.description.output]
    problems = []
    if list(inputs) != ["image"]:
        problems.append(f"inputs {list(inputs)} != ['image']")
    if outputs != OUTPUT_NAMES:
        problems.append(f"outputs {outputs} != {OUTPUT_NAMES}")
    ops = [op.type for f in spec.mlProgram.functions.values() for block in f.block_specializations.values()
           for op in block.operations]
    quantised_ops = sum("constexpr" in op for op in ops)
    if precision == "int8" and quantised_ops == 0:
        problems.append("no quantised-weight (constexpr) ops found")
    return {"status": "fail" if problems else "needs-macos", "reason": "; ".join(problems) or
            "structure checked on Linux (loads, names, shapes, quantised ops); numeric parity needs macOS",
            "ops": len(ops), "quantised_weight_ops": quantised_ops,
            "metadata": dict(mlmodel.user_defined_metadata)}


FORMAT = Format(name="coreml", suffix=".mlpackage", precisions=PRECISIONS, layout="NCHW", extra="coreml",
                export=export_coreml, check=check_coreml,
                not_runnable_because="Core ML runs only on Apple platforms: size and structure checked, no timing here",
                description="Core ML ML program (.mlpackage); int8: weights only (coremltools.optimize)")
