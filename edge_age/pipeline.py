"""``edge-age pipeline``: train -> export -> benchmark for every model with a quick recipe (the three seed models
and the phone model), in one command.

Each stage reuses what is already done: a finished run (test_metrics.json) is not retrained, an unfinished one
(last.pt) resumes, and an export whose manifest already describes the run's current best.pt and was made by the
current exporter revision is not redone. So a killed pipeline picks up where it stopped when given the same
command again.
"""
from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from pathlib import Path

from edge_age import formats
from edge_age.cli_args import csv_list, non_negative_int, positive_int
from edge_age.io import sha256_file
from edge_age.manifest import NAME as MANIFEST_NAME
from edge_age.manifest import read_manifest
from edge_age.train.recipes import apply_overrides, models_with_quick_recipes, resolve_recipe, seed_recipe_of

# --recipe full picks each model's seed recipe.
# The paper's two ablations of MA-SFV2, trained like it: no attention (plain ShuffleNetV2); L1 regression alone.
ABLATIONS = {"sfv2": {"model_options": {"attention": False}},
             "l1": {"model_options": {"age_output": "regression"}, "loss": {"age_l1": 1.0}}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="quick", help="quick (each model's CPU-sized recipe) or full (the seeds' recipes)")
    parser.add_argument("--models", default="all", help="comma-separated models (default: every registered model with a quick recipe)")
    parser.add_argument("--ablation", action="store_true", help="also train MA-SFV2 without attention and with L1 alone")
    parser.add_argument("--data", help="image folder (default: $EDGE_AGE_DATA or ../shared/data/utkface/images)")
    parser.add_argument("--epochs", type=positive_int, help="override every run's epochs (e.g. 1 for a smoke test)")
    parser.add_argument("--subset", type=positive_int, help="override every run's subset of images")
    parser.add_argument("--img-size", type=positive_int, help="override every run's input size")
    parser.add_argument("--batch-size", type=positive_int, help="override every run's batch size")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=non_negative_int, default=0, help="data-loader worker processes for training")
    parser.add_argument("--backbone-weights", help="VGG16 ImageNet file for --recipe full (vgg16-397923af.pth)")
    parser.add_argument("--formats", type=csv_list, default=list(formats.formats()))
    parser.add_argument("--precisions", type=csv_list, default=["fp32", "fp16", "int8"])
    parser.add_argument("--threads", default="1,all", help="benchmark thread counts")
    parser.add_argument("--bench-runs", type=positive_int, default=100, help="timed batch-1 runs per variant")
    parser.add_argument("--limit", type=positive_int, help="benchmark a seeded sample of N test images (default: all)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--exports-dir", default="exports")
    parser.add_argument("--out", help="benchmark results folder (default reports/pipeline-RECIPE)")


def planned_runs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(run name, resolved recipe with overrides) for every run the pipeline needs."""
    known = models_with_quick_recipes()
    models = known if args.models == "all" else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(known)}")
    if args.recipe not in ("quick", "full"):
        raise ValueError(f"--recipe must be quick or full, got {args.recipe!r}")
    plans = []
    for model in models:
        name = "quick" if args.recipe == "quick" else seed_recipe_of(model)
        recipe = apply_overrides(resolve_recipe(name, model), {"subset": args.subset, "img_size": args.img_size,
                                                              "batch_size": args.batch_size, "epochs": args.epochs})
        overrides = recipe["overrides"]
        plans.append((f"{model}-{name}", recipe))
        if args.ablation and model == "ma_sfv2":
            for suffix, change in ABLATIONS.items():
                variant = copy.deepcopy(recipe)
                variant["model_options"].update(change["model_options"])
                if "loss" in change:  # L1 alone for age; the gender term stays as in the main recipe
                    variant["loss"] = {**change["loss"], "gender_bce": recipe["loss"].get("gender_bce", 1.0)}
                variant["overrides"] = {**overrides, **change}
                plans.append((f"{model}-{name}-{suffix}", variant))
    return plans


def _train_stage(run_dir: Path, recipe: dict, args: argparse.Namespace) -> str:
    from edge_age.train.engine import RunOptions, train

    if (run_dir / "test_metrics.json").is_file():
        return "already trained"
    resume = (run_dir / "last.pt").is_file()
    train(recipe, RunOptions(out_dir=run_dir, data=args.data, device=args.device, resume=resume, workers=args.workers,
                             backbone_weights=args.backbone_weights))
    return "resumed and finished" if resume else "trained"


def _export_is_current(export_dir: Path, run_dir: Path) -> bool:
    """The export describes the run's current best.pt and was made by this exporter revision."""
    from edge_age.export.exporter import EXPORTER_REVISION

    if not (export_dir / MANIFEST_NAME).is_file():
        return False
    manifest = read_manifest(export_dir)
    return (manifest.header.get("exporter_revision") == EXPORTER_REVISION
            and all(entry.details.get("exporter_revision") == EXPORTER_REVISION for entry in manifest.files)
            and manifest.source.get("checkpoint_sha256") == sha256_file(run_dir / "best.pt")
            and all(manifest.verify(entry) is None for entry in manifest.files if entry.status != "export-failed"))


def run(args: argparse.Namespace) -> int:
    from edge_age.benchmark.harness import Scoring, find_exports, parse_threads, run_benchmark
    from edge_age.export.exporter import export_model

    thread_counts = parse_threads(args.threads)
    plans = planned_runs(args)
    started = time.perf_counter()
    export_dirs, summary = [], []
    for number, (run_name, recipe) in enumerate(plans, 1):
        run_dir = Path(args.runs_dir) / run_name
        print(f"\n== [{number}/{len(plans)}] train {run_name} -> {run_dir}", flush=True)
        t0 = time.perf_counter()
        trained = _train_stage(run_dir, recipe, args)
        train_seconds = time.perf_counter() - t0
        export_dir = Path(args.exports_dir) / run_name
        ablation = run_name.endswith(tuple(f"-{s}" for s in ABLATIONS))
        print(f"== [{number}/{len(plans)}] export {run_name} -> {export_dir}", flush=True)
        t0 = time.perf_counter()
        if _export_is_current(export_dir, run_dir):
            exported = "already exported"
        else:
            # Ablations only feed claims 3 and 4 (accuracy): their PyTorch row and an fp32 ONNX file suffice.
            formats = ["onnx"] if ablation else args.formats
            precisions = ["fp32"] if ablation else args.precisions
            # clean: an older export of this run (another best.pt) in the pipeline's own folder is replaced whole
            export_model(run_dir / "best.pt", export_dir, formats, precisions, run_dir=run_dir, data=args.data,
                         clean=True)
            exported = "exported"
        summary.append((run_name, trained, train_seconds, exported, time.perf_counter() - t0))
        export_dirs.append(export_dir)
    out_dir = Path(args.out or f"reports/pipeline-{args.recipe}")
    print(f"\n== benchmark -> {out_dir}", flush=True)
    run_benchmark(find_exports(*export_dirs), out_dir, Scoring(data=args.data, limit=args.limit), thread_counts,
                  args.bench_runs, 32, command="edge-age " + shlex.join(sys.argv[1:]))
    print(f"\npipeline done in {time.perf_counter() - started:,.0f} s:")
    for run_name, trained, train_seconds, exported, export_seconds in summary:
        print(f"  {run_name:<28} {trained} ({train_seconds:,.0f} s), {exported} ({export_seconds:,.0f} s)")
    print(f"  report: {out_dir / 'report.md'}")
    return 0
