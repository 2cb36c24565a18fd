"""``edge-age train-speed``: images/s of each recipe's training step on this machine, and the share of
step time spent waiting for data. Writes a Markdown table and JSON (machine described) under
results/training-speed/ and projects each recipe's wall time from the measured speed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from edge_age.machine import describe_machine, machine_line, machine_slug
from edge_age.io import atomic_write_json, atomic_write_text
from edge_age.train.recipes import QUICK_RECIPES, RECIPES, resolve_recipe

DEFAULT_RECIPES = "quick," + ",".join(RECIPES)
UTKFACE_TRAIN_SHARE = 0.7  # the split's training fraction: an epoch of the full data set is 0.7 x 19,995 images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipes", default=DEFAULT_RECIPES,
                        help=f"comma-separated recipe names; 'quick' means every model's quick recipe (default {DEFAULT_RECIPES})")
    parser.add_argument("--data", help="image folder (default: $EDGE_AGE_DATA or ../shared/data/utkface/images)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per recipe (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    parser.add_argument("--compile", action="store_true", help="torch.compile each model (GPU)")
    parser.add_argument("--out", help="output stem (default results/training-speed/MACHINE)")


def _expand(names: str) -> list[dict]:
    recipes = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        models = list(QUICK_RECIPES) if name == "quick" else [None]
        recipes += [resolve_recipe(name, model) for model in models]
    return recipes


def _projected_hours(recipe: dict, images_per_s: float, labelled: int) -> float:
    """Training-step time of the whole recipe at the measured speed (validation not counted)."""
    images = min(recipe.get("subset") or labelled, labelled) * UTKFACE_TRAIN_SHARE
    epochs = sum(phase["epochs"] for phase in recipe["phases"])
    return epochs * images / images_per_s / 3600


def run(args: argparse.Namespace) -> int:
    from edge_age.data import load_labelled, resolve_data_dir
    from edge_age.train.engine import measure_training_speed

    if args.steps <= 0 or args.warmup < 0:
        raise ValueError("--steps must be positive and --warmup not negative")
    recipes = _expand(args.recipes)
    data = load_labelled(resolve_data_dir(args.data))
    labelled = len(data)
    machine = describe_machine()
    rows = []
    for recipe in recipes:
        label = f"{recipe['model']} {recipe['name']}"
        result = measure_training_speed(recipe, data, args.device, args.steps, args.warmup, args.workers,
                                        args.compile)
        row = {"model": recipe["model"], "recipe": recipe["name"], "img_size": recipe["img_size"],
               "batch_size": recipe["batch_size"], "model_options": recipe.get("model_options", {}), **result,
               "projected_recipe_hours": _projected_hours(recipe, result["images_per_s"], labelled)}
        rows.append(row)
        print(f"{label}: {row['images_per_s']:,.0f} img/s, {row['step_ms']:.1f} ms/step, data wait "
              f"{row['data_wait_share']:.1%}, augment {row['augment_share']:.1%}, whole recipe ~"
              f"{row['projected_recipe_hours']:.2f} h of training steps", flush=True)
    stem = Path(args.out) if args.out else Path("results/training-speed") / machine_slug(machine)
    stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stem.with_suffix(".json"), {"machine": machine, "settings": vars(args) | {"handler": None},
                                                  "labelled_images": labelled, "rows": rows})
    atomic_write_text(stem.with_suffix(".md"), _markdown(machine, rows, args, labelled))
    print(f"wrote {stem.with_suffix('.md')} and .json")
    return 0


def _markdown(machine: dict, rows: list[dict], args: argparse.Namespace, labelled: int) -> str:
    lines = [f"# Training throughput on {machine['gpu'] or 'CPU only'}", "",
             f"Machine: {machine_line(machine)}; Python {machine['python']}, torch {machine['versions']['torch']}; "
             f"{machine['date']}.", "",
             f"Command: `edge-age train-speed --recipes {args.recipes} --steps {args.steps} --warmup {args.warmup} "
             f"--device {args.device} --workers {args.workers}{' --compile' if args.compile else ''}`. "
             f"Each row times {args.steps} real training steps (forward, loss, backward, Adam) of the recipe's first phase "
             "on cached real UTKFace images, after the warm-up; data wait = share of step time spent fetching the "
             "batch, augment = share spent in augmentation on the device. The projection multiplies the recipe's "
             f"epochs by its training images ({UTKFACE_TRAIN_SHARE:.0%} of {labelled:,} or of its subset); validation is not counted.", "",
             "| model | recipe | input | batch | precision | img/s | ms/step | data wait | augment | projected recipe (h) |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        options = ",".join(f"{k}={v}" for k, v in row["model_options"].items())
        lines.append(f"| {row['model']}{' (' + options + ')' if options else ''} | {row['recipe']} | {row['img_size']} | "
                     f"{row['batch_size']} | {'bf16 autocast' if 'bfloat16' in row['amp'] else 'fp32'} | "
                     f"{row['images_per_s']:,.0f} | {row['step_ms']:.1f} | {row['data_wait_share']:.1%} | "
                     f"{row['augment_share']:.1%} | {row['projected_recipe_hours']:.2f} |")
    return "\n".join(lines) + "\n"
