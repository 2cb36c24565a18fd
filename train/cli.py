"""``edge-age train``: flags -> a resolved recipe -> train.engine.train.

Works the same under ``torchrun --nproc_per_node K -m edge_age.cli train ...`` (one process per GPU).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from train.engine import RunOptions, train
from train.recipes import RECIPES, resolve_recipe


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _subset(text: str) -> int | str:
    """--subset N, or 'all' to train on the whole set when the recipe draws a subset (quick VGG16: 5,000)."""
    if text == "all":
        return "all"
    try:
        return _positive_int(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"takes a positive whole number or 'all', got {text!r}") from None


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _key_values(text: str) -> dict:
    """'a=1,b=x' -> {'a': 1, 'b': 'x'} (numbers and true/false parsed)."""
    result = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
        except json.JSONDecodeError:
            value = raw
        result[key.strip()] = value
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="custom_cnn, vgg16_transfer or ma_sfv2 (implied by a seed recipe)")
    parser.add_argument("--recipe", default="quick", help=f"quick (per model), {', '.join(RECIPES)}")
    parser.add_argument("--data", help="image folder (default: $EDGE_AGE_DATA or ../shared/data/utkface/images)")
    parser.add_argument("--labels", help="CSV file,age,gender for a folder that is not UTKFace-named")
    parser.add_argument("--out", help="run folder (default runs/MODEL-RECIPE)")
    parser.add_argument("--epochs", type=_positive_int, help="epochs of each phase")
    parser.add_argument("--batch-size", type=_positive_int)
    parser.add_argument("--img-size", type=_positive_int, help="input side in pixels")
    parser.add_argument("--lr", type=_positive_float, help="learning rate of each phase")
    parser.add_argument("--subset", type=_subset,
                        help="draw N images before splitting (coursework: 5000); 'all' for the whole set")
    parser.add_argument("--width", type=float, help="MA-SFV2 width multiplier (0.5, 1.0, 1.5, 2.0)")
    parser.add_argument("--augment", choices=["coursework", "paper", "none"])
    parser.add_argument("--loss", type=_key_values, help="loss weights, e.g. age_l1=1,gender_bce=1")
    parser.add_argument("--model-options", type=_key_values, help="e.g. attention=false,age_output=regression")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--force", action="store_true", help="overwrite a run folder that already holds a run")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    parser.add_argument("--workers", type=int, default=0, help="data-loader worker processes (0: in the main process)")
    parser.add_argument("--backbone-weights", help="torchvision-format VGG16 ImageNet file (vgg16-397923af.pth)")
    parser.add_argument("--pretrained", action="store_true", help="fetch VGG16 ImageNet weights through torch.hub")


def recipe_from_args(args: argparse.Namespace) -> dict:
    """The named recipe with every flag override applied and recorded under 'overrides'."""
    recipe = resolve_recipe(args.recipe, args.model)
    overrides = {}
    for flag, key in (("batch_size", "batch_size"), ("img_size", "img_size"), ("subset", "subset"),
                      ("augment", "augmentation")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
            recipe[key] = None if value == "all" else value
    for flag in ("epochs", "lr"):
        if getattr(args, flag) is not None:
            for phase in recipe["phases"]:
                phase[flag] = getattr(args, flag)
            overrides[flag] = getattr(args, flag)
    if args.width is not None:
        recipe["model_options"]["width"] = overrides["width"] = args.width
    if args.model_options:
        recipe["model_options"].update(args.model_options)
        overrides["model_options"] = args.model_options
    if args.loss:
        recipe["loss"] = overrides["loss"] = args.loss
    recipe["overrides"] = overrides
    return recipe


def run(args: argparse.Namespace) -> int:
    recipe = recipe_from_args(args)
    out_dir = Path(args.out or f"runs/{recipe['model']}-{args.recipe}")
    options = RunOptions(out_dir=out_dir, data=args.data, labels_csv=args.labels, device=args.device, seed=args.seed,
                         resume=args.resume, force=args.force, compile=args.compile, workers=args.workers,
                         backbone_weights=args.backbone_weights, pretrained=args.pretrained)
    train(recipe, options)
    return 0
