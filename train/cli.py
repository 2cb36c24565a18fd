"""``edge-age train``: flags -> a resolved recipe -> train.engine.train.

Works the same under ``torchrun --nproc_per_node K -m edge_age.cli train ...`` (one process per GPU).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from edge_age.augment import AUGMENTATIONS
from edge_age.cli_args import float_between, key_values, learning_rate, non_negative_int, positive_float, positive_int
from edge_age.train.distill import describe_teachers
from edge_age.train.engine import LOSS_TERMS, RunOptions, train
from edge_age.train.recipes import RECIPES, apply_overrides, resolve_recipe
from edge_age.train.source_run import describe_source_run

# Flags that define what a run trains: with --resume they must repeat the stored values (only --epochs may change).
RECIPE_FLAGS = ("recipe", "model", "batch_size", "img_size", "lr", "subset", "width", "augment", "loss", "model_options",
                "backbone_weights", "pretrained", "seed", "label_sigma", "ema_decay", "mixup", "lr_mult", "teacher",
                "distill_weight", "split", "init")


def _subset(text: str) -> int | str:
    """--subset N, or 'all' to train on the whole set when the recipe draws a subset (quick VGG16: 5,000)."""
    if text == "all":
        return "all"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"takes a positive whole number or 'all', got {text!r}") from None


def _loss_weights(text: str) -> dict:
    """'age_l1=1,gender_bce=0.5': known terms with finite, non-negative weights, not all zero."""
    weights = key_values(text)
    for key, value in weights.items():
        if key not in LOSS_TERMS:
            raise argparse.ArgumentTypeError(f"unknown loss term {key!r}; use {', '.join(LOSS_TERMS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"loss weight {key}={value!r} must be a number >= 0")
    if not any(weights.values()):
        raise argparse.ArgumentTypeError("every loss weight is 0: nothing would be learned")
    return weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a registered model (`edge-age models`); implied by a seed recipe")
    parser.add_argument("--recipe", help=f"quick (per model; the default), {', '.join(RECIPES)}")
    parser.add_argument("--data", help="image folder (default: $EDGE_AGE_DATA or ../shared/data/utkface/images)")
    parser.add_argument("--labels", help="CSV file,age,gender for a folder that is not UTKFace-named")
    parser.add_argument("--out", help="run folder (default runs/MODEL-RECIPE)")
    parser.add_argument("--epochs", type=positive_int, help="epochs of each phase (with --resume: extends or "
                        "shortens the run, recorded in config.json; a finished run trains on)")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--img-size", type=positive_int, help="input side in pixels")
    parser.add_argument("--lr", type=learning_rate, help="learning rate of each phase, in (0, 1]")
    parser.add_argument("--subset", type=_subset,
                        help="draw N images before splitting (coursework: 5000); 'all' for the whole set")
    parser.add_argument("--width", type=float, help="MA-SFV2 width multiplier (0.5, 1.0, 1.5, 2.0)")
    parser.add_argument("--augment", choices=list(AUGMENTATIONS))
    parser.add_argument("--loss", type=_loss_weights, help=f"loss weights of {', '.join(LOSS_TERMS)}, "
                        "e.g. age_l1=1,gender_bce=1")
    parser.add_argument("--model-options", type=key_values, help="e.g. attention=false,age_output=regression")
    parser.add_argument("--label-sigma", type=positive_float, help="age_ldl: the Gaussian's width in years")
    parser.add_argument("--ema-decay", type=float_between(0, 1, low_included=True, high_included=False), help="average the weights with this decay (0: off)")
    parser.add_argument("--mixup", type=float_between(0, 10, low_included=True), metavar="ALPHA",
                        help="blend training faces and their labels in pairs, weights from Beta(ALPHA, ALPHA), e.g. "
                        "0.2 (0: off; at most 10)")
    parser.add_argument("--lr-mult", type=key_values, help="learning-rate multiplier per parameter group, e.g. "
                        "backbone=0.3")
    parser.add_argument("--teacher", action="append", metavar="RUN",
                        help="distil from this finished run's best.pt (repeat for an ensemble; see README)")
    parser.add_argument("--distill-weight", type=float_between(0, 1, low_included=False, high_included=True),
                        help="share of the teachers' answers in the age and gender targets (default 0.5)")
    parser.add_argument("--init", metavar="RUN",
                        help="start from a finished run's best.pt instead of the recipe's initial weights (fine-tuning "
                             "it further, at a larger --img-size, or on your own faces with --labels); same model "
                             "and options")
    parser.add_argument("--split", help="a split.json to train on (e.g. another run's, to compare on the same "
                        "faces) instead of the one drawn from --seed")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, help="seed of the split, initial weights and augmentation (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--force", action="store_true", help="overwrite a run folder that already holds a run")
    parser.add_argument("--no-test", action="store_true",
                        help="train without scoring the test split, to choose between runs on validation alone; "
                        "a resume of the trained run scores it (an interrupted one finishes its epochs unscored first)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (GPU)")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="data-loader worker processes (0: in the main process)")
    parser.add_argument("--backbone-weights", help="torchvision-format VGG16 ImageNet file (vgg16-397923af.pth)")
    parser.add_argument("--pretrained", action="store_true", help="fetch VGG16 ImageNet weights through torch.hub")


def recipe_from_args(args: argparse.Namespace) -> dict:
    """The named recipe with every flag override applied and recorded under 'overrides'."""
    recipe = resolve_recipe(args.recipe or "quick", args.model)
    if args.split:  # the split file lists the faces; a subset the recipe would draw must not be recorded as used
        if args.subset is not None:
            raise ValueError("--subset and --split together: the split file already lists the faces to use; "
                             "drop --subset")
        recipe["subset"] = None
    return apply_overrides(recipe, {"batch_size": args.batch_size, "img_size": args.img_size, "subset": args.subset,
                                    "augmentation": args.augment, "epochs": args.epochs, "lr": args.lr,
                                    "width": args.width, "model_options": args.model_options, "loss": args.loss,
                                    "label_sigma": args.label_sigma, "ema_decay": args.ema_decay,
                                    "mixup": args.mixup, "lr_mult": args.lr_mult, "distill": _distill(args),
                                    "init": describe_source_run(args.init, "--init") if args.init else None})


def _distill(args: argparse.Namespace) -> dict | None:
    """The recipe's "distill" entry from --teacher and --distill-weight (None without --teacher)."""
    if not args.teacher:
        if args.distill_weight is not None:
            raise ValueError("--distill-weight needs --teacher RUN")
        return None
    return describe_teachers(args.teacher, args.distill_weight if args.distill_weight is not None else 0.5)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        return _resume(args)
    recipe = recipe_from_args(args)
    out_dir = Path(args.out or f"runs/{recipe['model']}-{recipe['name']}")
    options = RunOptions(out_dir=out_dir, data=args.data, labels_csv=args.labels, device=args.device,
                         seed=args.seed if args.seed is not None else 0,
                         resume=args.resume, force=args.force, compile=args.compile, workers=args.workers,
                         backbone_weights=args.backbone_weights, pretrained=args.pretrained, split_file=args.split,
                         score_test=not args.no_test)
    train(recipe, options)
    return 0


def _resume(args: argparse.Namespace) -> int:
    """--resume continues the recipe stored in the run. --epochs may change its length (recorded in config.json);
    any other recipe flag must repeat the stored value: one that differs is refused, never ignored."""
    if not args.out:
        raise ValueError("--resume needs --out RUN_FOLDER (the run to continue)")
    config_path = Path(args.out) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"--resume: {config_path} is missing; is {args.out} a run folder?")
    stored = json.loads(config_path.read_text())
    differing = _differences(args, stored["recipe"], stored.get("seed", 0))
    if differing:
        raise ValueError(f"--resume continues {args.out} with the recipe it started with, but "
                         f"{'; '.join(differing)}. Only --epochs can change on --resume; for other settings start a "
                         "new run (--out)")
    options = RunOptions(out_dir=Path(args.out), data=args.data, labels_csv=args.labels, device=args.device,
                         resume=True, compile=args.compile, workers=args.workers, resume_epochs=args.epochs,
                         score_test=not args.no_test)
    train(None, options)
    return 0


def _differences(args: argparse.Namespace, recipe: dict, seed: int) -> list[str]:
    """The recipe flags given with --resume whose value is not the stored one, in words."""
    stored = {"recipe": recipe.get("name"), "model": recipe["model"], "batch_size": recipe["batch_size"],
              "img_size": recipe["img_size"], "subset": recipe.get("subset") or "all",
              "augment": recipe.get("augmentation"), "lr": recipe["phases"][0]["lr"],
              "width": recipe.get("model_options", {}).get("width"), "loss": recipe.get("loss"), "seed": seed,
              "label_sigma": recipe.get("label_sigma"), "ema_decay": recipe.get("ema_decay"),
              "mixup": recipe.get("mixup"), "lr_mult": recipe["phases"][0].get("lr_mult")}
    given = {flag: getattr(args, flag) for flag in RECIPE_FLAGS if getattr(args, flag) not in (None, False)}
    differing = []
    for flag, value in given.items():
        if flag == "model_options":
            mismatched = {k: v for k, v in value.items() if recipe.get("model_options", {}).get(k) != v}
            if mismatched:
                differing.append(f"--model-options {mismatched} differs from the stored {recipe.get('model_options')}")
        elif flag in ("backbone_weights", "pretrained"):
            differing.append(f"--{flag.replace('_', '-')} means nothing on --resume (last.pt holds all weights)")
        elif flag in ("teacher", "distill_weight", "split", "init"):
            kept = {"split": "split.json", "init": "weights, in last.pt"}.get(flag, "teachers, recorded in config.json")
            differing.append(f"--{flag.replace('_', '-')} means nothing on --resume (the run keeps its own {kept})")
        elif flag == "lr" and any(phase["lr"] != value for phase in recipe["phases"]):
            differing.append(f"--lr {value} differs from the stored {[phase['lr'] for phase in recipe['phases']]}")
        elif flag in stored and flag != "lr" and stored[flag] != value:
            differing.append(f"--{flag.replace('_', '-')} {value} differs from the stored {stored[flag]}")
    return differing
