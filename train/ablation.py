"""``edge-age train-ablation``: does each piece of the phone recipe earn its place?

Trains the phone recipe at a reduced budget (fewer images, a smaller input, fewer epochs) once as it is, once more
with another seed (the spread between the two is the noise floor), and once per change, each change taking one
piece out or swapping it for the plain alternative. Every run is an ordinary run folder under --out, so a killed
ablation continues where it stopped (finished runs are kept, an unfinished one resumes from its last.pt). The table
compares best validation MAE only: the test split is not looked at for choices.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from edge_age.cli_args import csv_list, float_between, output_folder, positive_int
from edge_age.data import DEFAULT_FRACTIONS
from edge_age.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from edge_age.machine import describe_machine, machine_line
from edge_age.train.recipes import apply_overrides, resolve_recipe

BASE_RECIPE = "phone"


@dataclass(frozen=True)
class Change:
    """One row of the ablation: the phone recipe with ``overrides`` applied (see ``apply_overrides``)."""

    name: str
    description: str
    overrides: dict = field(default_factory=dict)
    seed: int = 0
    kind: str = "piece"  # "piece": taken out or swapped (kept only if that hurts); "size": a point of the input sweep


CHANGES = (
    Change("baseline", "the phone recipe at the ablation budget", kind="reference"),
    Change("baseline-seed1", "the same with seed 1 (another split, initialisation and augmentation): the noise floor",
           seed=1, kind="reference"),
    Change("no-ldl", "expectation L1 alone instead of Gaussian label distributions + L1",
           {"loss": {"age_l1": 1.0, "gender_bce": 1.0}}),
    Change("adam-step", "Adam with a x0.2 step at half time instead of AdamW, warm-up and cosine decay",
           {"optimizer": "adam", "weight_decay": 0.0, "scheduler": "half-time step"}),
    Change("slow-backbone", "the backbone at 0.3x the heads' learning rate (the first phone run's setting)",
           {"lr_mult": {"backbone": 0.3}}),
    Change("unfrozen", "every block trained (the recipe freezes the stem and first six)",
           {"model_options": {"frozen_blocks": 0}}),
    Change("no-ema", "no average of the weights", {"ema_decay": 0}),
    Change("coursework-augment", "the coursework's augmentation instead of a phone detector's crop jitter",
           {"augmentation": "coursework"}),
    Change("112px", "input 112 px", {"img_size": 112}, kind="size"),
    Change("128px", "input 128 px (the phone recipe's size)", {"img_size": 128}, kind="size"),
    Change("160px", "input 160 px", {"img_size": 160}, kind="size"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image folder (default: $EDGE_AGE_DATA or ../shared/data/utkface/images)")
    parser.add_argument("--out", type=output_folder, default=Path("runs/ablation"), help="folder of the run folders and the table")
    parser.add_argument("--changes", type=csv_list, default=[c.name for c in CHANGES],
                        help="which rows to run, comma-separated (default all: " + ", ".join(c.name for c in CHANGES) + ")")
    parser.add_argument("--subset", type=positive_int, default=8000, help="images drawn before splitting (default 8000)")
    parser.add_argument("--img-size", type=positive_int, default=96, help="input side of the baseline (default 96)")
    parser.add_argument("--epochs", type=positive_int, default=6, help="epochs of every run (default 6)")
    parser.add_argument("--ema-decay", type=float_between(0, 1, low_included=True, high_included=False), default=0.99,
                        help="the baseline's EMA decay, scaled to the shorter run (the full recipe's 0.998 averages "
                             "over ~500 steps, most of this budget); default 0.99")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--table-only", action="store_true", help="write the table from the finished runs, train nothing")


def ablation_recipe(change: Change, budget: dict) -> dict:
    """The phone recipe at the budget, with the change applied on top."""
    overrides = {"subset": budget["subset"], "img_size": budget["img_size"], "epochs": budget["epochs"],
                 "ema_decay": budget["ema_decay"], **change.overrides}
    if overrides.get("scheduler") == "half-time step":
        overrides["scheduler"] = {"type": "step", "every": max(1, budget["epochs"] // 2), "gamma": 0.2}
    return apply_overrides(resolve_recipe(BASE_RECIPE, None), overrides)


def run_change(change: Change, budget: dict, out: Path, data: str | None, device: str) -> None:
    """Train one row's run, or finish it, or leave it when done; refuse a folder that holds another recipe."""
    from edge_age.train.engine import RunOptions, train

    folder = out / change.name
    recipe = ablation_recipe(change, budget)
    stored = folder / "config.json"
    if stored.is_file():
        config = json.loads(stored.read_text())
        if config.get("recipe", {}).get("overrides") != recipe["overrides"] or config.get("seed") != change.seed:
            raise FileExistsError(f"{folder} holds a run with other settings than this ablation's {change.name!r} "
                                  f"(another budget?); choose another --out or move it away")
    if (folder / "test_metrics.json").is_file():
        print(f"{change.name}: finished earlier, kept")
        return
    resume = (folder / "last.pt").is_file()  # a run writes config.json (checked above) before its first last.pt
    print(f"{change.name}: {'resuming' if resume else 'training'} ({change.description})", flush=True)
    train(None if resume else recipe, RunOptions(out_dir=folder, data=data, device=device, seed=change.seed,
                                                 resume=resume))


def _best_epoch(metrics_csv: Path) -> dict | None:
    """The epoch with the lowest validation MAE, and the run's total training minutes."""
    if not metrics_csv.is_file():
        return None
    with open(metrics_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    best = min(rows, key=lambda r: float(r["val_age_mae"]))
    return {"epoch": int(best["epoch"]), "epochs_run": len(rows), "val_mae": float(best["val_age_mae"]),
            "val_gender": float(best["val_gender_acc"]),
            "minutes": sum(float(r["epoch_seconds"]) for r in rows) / 60}


def ablation_rows(out: Path, names: list[str]) -> list[dict]:
    rows = []
    for change in CHANGES:
        if change.name not in names:
            continue
        best = _best_epoch(out / change.name / "metrics.csv")
        finished = (out / change.name / "test_metrics.json").is_file()
        rows.append({"change": change.name, "description": change.description, "kind": change.kind,
                     "finished": finished, **(best or {})})
    return rows


def _verdicts(rows: list[dict]) -> None:
    """Word each row against the baseline and the seed spread: a change inside the noise decides nothing."""
    by_name = {r["change"]: r for r in rows if "val_mae" in r}
    base = by_name.get("baseline")
    if base is None:
        return
    noise = abs(by_name["baseline-seed1"]["val_mae"] - base["val_mae"]) if "baseline-seed1" in by_name else None
    for row in rows:
        if "val_mae" not in row or row["kind"] == "reference":
            continue
        row["delta_mae"] = delta = row["val_mae"] - base["val_mae"]
        if noise is None:
            row["verdict"] = "no seed spread measured"
        elif abs(delta) <= noise:
            row["verdict"] = "within the seed spread"
        elif row["kind"] == "size":
            row["verdict"] = "better than the baseline size" if delta < 0 else "worse than the baseline size"
        else:
            row["verdict"] = "the piece helps: kept" if delta > 0 else "the piece hurts here"


def write_table(out: Path, rows: list[dict], budget: dict, machine: dict) -> None:
    _verdicts(rows)
    split_shares = " / ".join(f"{share:.0%}" for share in DEFAULT_FRACTIONS) + " train / val / test"
    lines = [f"# Phone recipe ablation ({BASE_RECIPE} recipe at a reduced budget)", "",
             f"Machine: {machine_line(machine)}; torch {machine['versions']['torch']}; {machine['date']}.", "",
             f"Budget: {budget['subset']:,} images drawn (split {split_shares}), {budget['img_size']} px, {budget['epochs']} "
             f"epochs, EMA decay {budget['ema_decay']}. Each row changes one thing; val MAE is the best epoch's on the "
             "validation split (the test split is not used for choices). A difference no larger than the gap "
             "between the two seeds decides nothing.", "",
             "| change | what differs | val MAE | vs baseline | val gender | best epoch | minutes | verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in rows:
        if "val_mae" not in row:
            lines.append(f"| {row['change']} | {row['description']} | not run | | | | | |")
            continue
        unfinished = "" if row["finished"] else f" (unfinished: {row['epochs_run']} epochs)"
        delta = f"{row['delta_mae']:+.2f}" if "delta_mae" in row else ""
        lines.append(f"| {row['change']} | {row['description']}{unfinished} | {row['val_mae']:.2f} | {delta} | "
                     f"{row['val_gender']:.1%} | {row['epoch']} | {row['minutes']:.1f} | {row.get('verdict', '')} |")
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
    atomic_write_json(out / "ablation.json", {"machine": machine, "budget": budget, "base_recipe": BASE_RECIPE,
                                              "rows": rows})
    _plot(out / "ablation.png", rows)


def _plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if "val_mae" in r]
    if not measured:
        return
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(measured) + 1.2))
    colours = {"reference": "tab:gray", "piece": "tab:blue", "size": "tab:green"}
    ax.barh([r["change"] for r in measured], [r["val_mae"] for r in measured],
            color=[colours[r["kind"]] for r in measured])
    references = {r["change"]: r["val_mae"] for r in measured if r["kind"] == "reference"}
    if len(references) == 2:  # the band the verdicts use: baseline +- the gap between the seeds
        base, noise = references["baseline"], abs(references["baseline-seed1"] - references["baseline"])
        ax.axvspan(base - noise, base + noise, color="tab:gray", alpha=0.2, label="baseline +- seed spread")
        ax.legend(loc="lower right")
    low = min(r["val_mae"] for r in measured)
    ax.set_xlim(low - 0.5, max(r["val_mae"] for r in measured) + 0.2)
    ax.invert_yaxis()
    ax.set_xlabel("best validation age MAE (years, lower is better)")
    ax.set_title("phone recipe: one change at a time")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.changes) - {c.name for c in CHANGES})
    if unknown:
        raise ValueError(f"--changes: unknown {', '.join(unknown)}; choose from {', '.join(c.name for c in CHANGES)}")
    budget = {"subset": args.subset, "img_size": args.img_size, "epochs": args.epochs, "ema_decay": args.ema_decay}
    out = Path(args.out)
    if not args.table_only:
        for change in CHANGES:
            if change.name in args.changes:
                run_change(change, budget, out, args.data, args.device)
    rows = ablation_rows(out, args.changes)
    write_table(out, rows, budget, describe_machine())
    print((out / "ablation.md").read_text())
    return 0
