"""``edge-age models``: the registry as a table, with every width variant of MA-SFV2."""
from __future__ import annotations

import argparse

from edge_age.model_stats import count_flops, count_parameters
from edge_age.registry import OUTPUT_MEANINGS, create_model, list_models

# The variants worth listing: each model at its default, plus MA-SFV2's widths and its ablation.
TABLE_VARIANTS = [
    ("custom_cnn", {}),
    ("vgg16_transfer", {}),
    *[("ma_sfv2", {"width": w}) for w in (0.5, 1.0, 1.5, 2.0)],
    ("ma_sfv2", {"width": 2.0, "attention": False}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--img-size", type=int, default=None, help="count FLOPs at this input size instead of each default")


def model_rows(img_size: int | None = None) -> list[dict]:
    rows = []
    for name, options in TABLE_VARIANTS:
        if img_size:
            options = {**options, "img_size": img_size}
        model = create_model(name, **options)
        spec = model.input_spec
        outputs = ["age", "gender_logit"] + (["age_logits", "age_expectation", "age_regression"] if name == "ma_sfv2" else [])
        rows.append({
            "model": name + "".join(f" {k}={v}" for k, v in options.items() if k != "img_size"),
            "params": count_parameters(model),
            "gflops": count_flops(model) / 1e9,
            "input": f"{spec.size}x{spec.size} {spec.channel_order}",
            "normalisation": "x/255" if spec.mean == (0.0, 0.0, 0.0) else "x/255, ImageNet mean/std",
            "outputs": ", ".join(outputs),
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_rows(args.img_size)
    header = f"{'model':<34} {'params':>12} {'GFLOPs':>8}  {'input':<12} {'normalisation':<26} outputs"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<34} {r['params']:>12,} {r['gflops']:>8.3f}  {r['input']:<12} {r['normalisation']:<26} {r['outputs']}")
    print("\nregistered:", ", ".join(list_models()))
    print("FLOPs count a multiply-add as 2, at batch 1 and the input size shown.")
    for key, meaning in OUTPUT_MEANINGS.items():
        print(f"  {key}: {meaning}")
    return 0
