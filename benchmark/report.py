"""Write a benchmark's results: report.md (readable on its own), results.csv, results.json and the plots."""
from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from edge_age.benchmark.claims import PHONE_BUDGET, SEED_NUMBERS
from edge_age.io import atomic_write_json, atomic_write_text
from edge_age.metrics import CS_MAX_ERROR

CSV_COLUMNS = ["model", "family", "format", "precision", "status", "size_mb", "parameters", "gflops", "input_size",
               "n", "age_mae", "cs5", "gender_accuracy", "mae_change_vs_pytorch", "gender_change_points_vs_pytorch"]


def _latency_columns(thread_counts: list[int]) -> list[str]:
    columns = []
    for t in thread_counts:
        columns += [f"latency_ms_median_{t}t", f"latency_ms_p90_{t}t", f"throughput_ips_{t}t", f"peak_rss_mb_{t}t",
                    f"floor_ms_{t}t", f"multiple_of_floor_{t}t"]
    return columns


def _flat(row: dict, thread_counts: list[int]) -> dict:
    flat = {c: row.get(c) for c in CSV_COLUMNS}
    for t in thread_counts:
        timing = row.get("latency", {}).get(str(t), {})
        flat.update({f"latency_ms_median_{t}t": timing.get("latency_ms_median"),
                     f"latency_ms_p90_{t}t": timing.get("latency_ms_p90"),
                     f"throughput_ips_{t}t": timing.get("throughput_images_per_s"),
                     f"peak_rss_mb_{t}t": timing.get("peak_rss_mb"), f"floor_ms_{t}t": timing.get("floor_ms"),
                     f"multiple_of_floor_{t}t": timing.get("multiple_of_floor")})
    return flat


def _fmt(value, spec: str = ".2f", empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def write_results(out_dir: Path, rows: list[dict], claims: list[dict], context: dict) -> None:
    """All outputs of one benchmark run into ``out_dir``: written into a staging folder first and moved in
    with report.md last, so an interruption never leaves a report that mixes two runs or looks complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))  # ours alone
    threads = context["thread_counts"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS + _latency_columns(threads), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_flat(row, threads))
    atomic_write_text(staging / "results.csv", buffer.getvalue())
    atomic_write_json(staging / "results.json", {"context": context, "rows": rows, "claims": claims,
                                                 "seed_numbers": SEED_NUMBERS})
    plots = draw_plots(staging, rows, threads)
    atomic_write_text(staging / "report.md", markdown(rows, claims, context, plots))
    (out_dir / "report.md").unlink(missing_ok=True)
    for name in ["results.csv", "results.json", *plots, "report.md"]:
        os.replace(staging / name, out_dir / name)
    shutil.rmtree(staging, ignore_errors=True)


def markdown(rows: list[dict], claims: list[dict], context: dict, plots: list[str]) -> str:
    threads = context["thread_counts"]
    machine = context["machine"]
    lines = [f"# edge-age benchmark ({machine['date']})", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores, GPU: {machine['gpu'] or 'none (CPU runtimes only)'}; "
             f"Python {machine['python']}, {', '.join(f'{k} {v}' for k, v in context['versions'].items())}.", "",
             f"Command: `{context['command']}`", "",
             f"Accuracy: the whole `{context['split']}` split of each model's own training run"
             + (f" (a seeded sample of {context['limit']} images)" if context.get("limit") else "")
             + f". Latency: batch 1, median and p90 over {context['runs']} timed runs after 10 warm-up runs, on "
             f"normalised inputs prepared outside the timed region, each runtime in its own process with a fixed thread "
             f"count; throughput at batch {context['batch']}. Peak memory: the measuring process's peak resident set "
             "(runtime, model and Python together).", ""] + ([f"Note: {context['note']}.", ""] if context.get("note") else [])
    peaks = context.get("peaks", {})
    if peaks:
        lines += ["## Compute floor", "",
                  "This CPU's measured ceiling (best of 10 products of 1024x1024 matrices) and, per model, FLOPs / ceiling "
                  "as the floor latency; 'x floor' is the measured median latency as a multiple of that floor.", "",
                  "| threads | fp32 GFLOP/s (torch) | int8 GOP/s (onnxruntime MatMulInteger) |", "| ---: | ---: | ---: |"]
        lines += [f"| {t} | {p['fp32_gflops']:.1f} | {p['int8_gops']:.1f} |" for t, p in peaks.items()]
        lines.append("")
    header = ["model", "format", "precision", "status", "MB", "params", "GFLOPs", "N", "age MAE", "CS(5)", "gender acc"]
    for t in threads:
        header += [f"ms p50 ({t}t)", f"ms p90 ({t}t)", f"x floor ({t}t)", f"img/s b{context['batch']} ({t}t)"]
    header.append("peak MB")
    lines += ["## Results", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [row["model"], row["format"], row["precision"], row["status"], _fmt(row.get("size_mb")),
                 f"{row['parameters']:,}", f"{row['gflops']:.3f}", _fmt(row.get("n"), "d"), _fmt(row.get("age_mae")),
                 _fmt(row.get("cs5"), ".3f"), _fmt(row.get("gender_accuracy"), ".3f")]
        for t in threads:
            timing = row.get("latency", {}).get(str(t), {})
            cells += [_fmt(timing.get("latency_ms_median")), _fmt(timing.get("latency_ms_p90")),
                      _fmt(timing.get("multiple_of_floor"), ".1f"), _fmt(timing.get("throughput_images_per_s"), ".0f")]
        peaks = [t["peak_rss_mb"] for t in row.get("latency", {}).values() if t.get("peak_rss_mb") is not None]
        cells.append(_fmt(max(peaks, default=None), ".0f"))
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({f"{r['model']} {r['format']} {r['precision']}: {r['note']}" for r in rows if r.get("note")})
    notes += sorted({f"{r['model']} {r['format']} {r['precision']}: {r['export_reason']}" for r in rows
                     if r["status"] in ("failed parity", "export failed") and r.get("export_reason")})
    if notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    lines += ["", "## The claims", ""]
    for claim in claims:
        lines += [f"{claim['claim']}. **{claim['verdict']}**: {claim['text']}  ", f"   {claim['evidence']}", ""]
    lines += [f"Claim 5's yardstick ({PHONE_BUDGET['latency_ms']:.0f} ms on one core of this CPU, under "
              f"{PHONE_BUDGET['size_mb']:.0f} MB) is this project's choice; a phone's big core is typically slower than a "
              "server core, so read the margin, not only the verdict.", "",
              "## The seeds' own numbers (other data: not directly comparable)", "",
              "| source | model | data | age MAE | gender acc |", "| --- | --- | --- | ---: | ---: |"]
    for seed in SEED_NUMBERS:
        lines.append(f"| {seed['source']} | {seed['model']} | {seed['data']} | {seed['age_mae']:.2f} | "
                     f"{_fmt(seed['gender_accuracy'], '.1%')} |")
    references = [r for r in rows if r["format"] == "pytorch" and "age_mae" in r]
    if references:
        lines += ["", "Ours (PyTorch reference rows above, UTKFace test splits of our runs):", ""]
        lines += [f"- {r['model']}: MAE {r['age_mae']:.2f}, gender {r['gender_accuracy']:.1%} on {r['n']} test images"
                  for r in references]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def _pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both axes (lower is better on both)."""
    return [i for i, (x, y) in enumerate(points)
            if not any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for j, (x2, y2) in enumerate(points) if j != i)]


def draw_plots(out_dir: Path, rows: list[dict], thread_counts: list[int]) -> list[str]:
    """MAE vs latency (Pareto front marked), MAE vs size, CS(e) curves, gender accuracy vs latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if "age_mae" in r and r.get("latency")]
    if not measured:
        return []
    t = str(thread_counts[0])
    names = []

    def scatter(name, x_of, y_of, xlabel, ylabel, pareto, log_x=True):
        points = [(x_of(r), y_of(r)) for r in measured]
        fig, ax = plt.subplots(figsize=(8, 5.5))
        families = sorted({r["family"] for r in measured})
        for family in families:
            xs = [p[0] for p, r in zip(points, measured) if r["family"] == family]
            ys = [p[1] for p, r in zip(points, measured) if r["family"] == family]
            ax.scatter(xs, ys, label=family, s=40)
        for (x, y), r in zip(points, measured):
            ax.annotate(f"{r['format']} {r['precision']}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        if pareto:
            front = sorted((points[i] for i in _pareto(points)))
            ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)
        names.append(name)

    scatter("mae_vs_latency.png", lambda r: r["latency"][t]["latency_ms_median"], lambda r: r["age_mae"],
            f"latency, batch 1, {t} thread(s), median ms (log)", "age MAE (years)", pareto=True)
    scatter("mae_vs_size.png", lambda r: r["size_mb"], lambda r: r["age_mae"], "file size (MB, log)",
            "age MAE (years)", pareto=True)
    scatter("gender_vs_latency.png", lambda r: r["latency"][t]["latency_ms_median"], lambda r: r["gender_accuracy"],
            f"latency, batch 1, {t} thread(s), median ms (log)", "gender accuracy", pareto=False)

    fig, ax = plt.subplots(figsize=(7, 5))
    for r in (r for r in measured if r["format"] == "pytorch"):
        ax.plot(range(CS_MAX_ERROR + 1), [r["cs"][str(e)] for e in range(CS_MAX_ERROR + 1)], marker="o", label=r["model"])
    ax.set_xlabel("error level e (years)")
    ax.set_ylabel("CS(e): share of faces with |error| <= e")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "cs_curves.png", dpi=120)
    plt.close(fig)
    names.append("cs_curves.png")
    return names
