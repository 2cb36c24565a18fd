"""``edge-age models``: the registry as a table, each model with the variants it lists (``listed_variants``)."""
from __future__ import annotations

import argparse

import torch

from edge_age.model_stats import count_flops, count_parameters
from edge_age.registry import OUTPUT_MEANINGS, create_model, list_models



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--img-size", type=int, default=None, help="count FLOPs at this input size instead of each default")


def model_rows(img_size: int | None = None) -> list[dict]:
    rows = []
    variants = [(name, options) for name in list_models() for options in create_model(name).listed_variants]
    for name, options in variants:
        if img_size:
            options = {**options, "img_size": img_size}
        model = create_model(name, **options).eval()
        spec = model.input_spec
        with torch.no_grad():
            outputs = list(model(torch.zeros(1, 3, spec.size, spec.size)))
        rows.append({
            "model": name + "".join(f" {k}={v}" for k, v in options.items() if k != "img_size"),
            "params": count_parameters(model),
            "gflops": count_flops(model) / 1e9,
            "input": f"{spec.size}x{spec.size} {spec.channel_order}",
            "normalisation": "x/255" if spec.mean == (0.0, 0.0, 0.0) else
                             f"x/255, mean {spec.mean[0]:.3f}.., std {spec.std[0]:.3f}..",
            "outputs": ", ".join(outputs),
        })
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_rows(args.img_size)
    header = f"{'model':<34} {'params':>12} {'GFLOPs':>8}  {'input':<12} {'normalisation':<32} outputs"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['model']:<34} {r['params']:>12,} {r['gflops']:>8.3f}  {r['input']:<12} {r['normalisation']:<32} {r['outputs']}")
    print("\nregistered:", ", ".join(list_models()))
    print("FLOPs count a multiply-add as 2, at batch 1 and the input size shown.")
    for key, meaning in OUTPUT_MEANINGS.items():
        print(f"  {key}: {meaning}")
    return 0
