"""Write a benchmark's results: report.md (readable on its own), results.csv, results.json and the plots."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from edge_age.benchmark.claims import PHONE_BUDGET, PHONE_MODEL_TARGETS, SEED_NUMBERS, paired
from edge_age.io import atomic_write_json, atomic_write_text
from edge_age.machine import machine_line
from edge_age.metrics import (CS_MAX_ERROR, INTERVAL_RESAMPLES, decided, difference_text, shown_as_change,
                              with_interval)

ANSWERS_FILE = "answers.npz"  # every measured row's per-face answers (write_answers)

CSV_COLUMNS = ["device", "model", "family", "format", "precision", "status", "size_mb", "parameters", "gflops", "input_size",
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


def write_results(out_dir: Path, rows: list[dict], claims: list[dict], context: dict, on_devices=()) -> None:
    """All outputs of one benchmark run into ``out_dir``: written into a staging folder first and moved in
    with report.md last, so an interruption never leaves a report that mixes two runs or looks complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))  # ours alone
    threads = context["thread_counts"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS + _latency_columns(threads), lineterminator="\n")
    writer.writeheader()
    for row in [*rows, *on_devices]:
        writer.writerow(_flat(row, threads))
    atomic_write_text(staging / "results.csv", buffer.getvalue())
    atomic_write_json(staging / "results.json", {"context": context,
                                                 "rows": [{k: v for k, v in r.items() if k != "answers"} for r in rows],
                                                 "device_rows": list(on_devices), "claims": claims,
                                                 "seed_numbers": SEED_NUMBERS})
    write_answers(staging / ANSWERS_FILE, rows)
    plots = draw_plots(staging, rows, threads) + draw_device_plot(staging, rows, list(on_devices), threads[0])
    atomic_write_text(staging / "report.md", markdown(rows, claims, context, plots, list(on_devices)))
    (out_dir / "report.md").unlink(missing_ok=True)
    for name in ["results.csv", "results.json", ANSWERS_FILE, *plots, "report.md"]:
        os.replace(staging / name, out_dir / name)
    shutil.rmtree(staging, ignore_errors=True)


def write_answers(path: Path, rows: list[dict]) -> None:
    """Every measured row's answer for every face, so differences between rows, or between this report's rows
    and another's, can be worked out on the same faces later (``read_answers``, ``claims.paired``). Row i of
    results.json is stored as ``i/face``, indices into ``faces`` (whose labels are ``true_age``, ``true_gender``),
    ``i/age`` and ``i/female_prob``."""
    faces, labels, arrays = {}, [], {}
    for number, row in enumerate(rows):
        answers = row.get("answers")
        if not answers:
            continue
        for face, age, gender in zip(answers["faces"], answers["true_age"], answers["true_gender"]):
            if face not in faces:
                faces[face] = len(faces)
                labels.append((age, gender))
        arrays[f"{number}/face"] = np.array([faces[face] for face in answers["faces"]], np.int32)
        arrays[f"{number}/age"] = np.asarray(answers["age"])
        arrays[f"{number}/female_prob"] = np.asarray(answers["female_prob"])
    ages, genders = (np.array(column) for column in zip(*labels)) if labels else (np.zeros(0), np.zeros(0, int))
    np.savez_compressed(path, faces=np.array(list(faces), dtype=str), true_age=ages, true_gender=genders, **arrays)


def read_answers(folder: Path) -> list[dict]:
    """The rows of a benchmark report's results.json, each scored row with its per-face "answers" again, ready
    for ``claims.paired``."""
    folder = Path(folder)
    if not (folder / ANSWERS_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {ANSWERS_FILE}: reports made before 2026-12-07 kept no per-face "
                                "answers; run `edge-age benchmark` again for one that does")
    rows = json.loads((folder / "results.json").read_text())["rows"]
    with np.load(folder / ANSWERS_FILE) as saved:
        faces, ages, genders = saved["faces"], saved["true_age"], saved["true_gender"]
        for number, row in enumerate(rows):
            if f"{number}/face" in saved:
                index = saved[f"{number}/face"]
                row["answers"] = {"faces": list(faces[index]), "age": saved[f"{number}/age"],
                                  "female_prob": saved[f"{number}/female_prob"], "true_age": ages[index],
                                  "true_gender": genders[index]}
    return rows


def markdown(rows: list[dict], claims: list[dict], context: dict, plots: list[str], on_devices=()) -> str:
    threads = context["thread_counts"]
    machine = context["machine"]
    lines = [f"# edge-age benchmark ({machine['date']})", "",
             f"Machine: {machine_line(machine)}; {', '.join(f'{k} {v}' for k, v in context['versions'].items())}.", "",
             f"Command: `{context['command']}`", "",
             f"Accuracy: the whole `{context['split']}` split of each model's own training run"
             + (f" (a seeded sample of {context['limit']} images)" if context.get("limit") else "")
             + f". Latency: batch 1, median and p90 over {context['runs']} timed runs after 10 warm-up runs, on "
             f"normalised inputs prepared outside the timed region, each runtime in its own process with a fixed thread "
             f"count, read in {context.get('latency_processes', 1)} fresh process(es) per file and thread count, the "
             f"reading with the middle median kept; throughput at batch {context['batch']}. Peak memory: the "
             "measuring process's peak resident set (Python, numpy, the runtime and the model together; an exported "
             "file's process loads no torch, the PyTorch row's does).", ""] + ([f"Note: {context['note']}.", ""] if context.get("note") else [])
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
    lines += (band_section(rows) + interval_section(rows) + paired_section(rows) + speed_section(rows, context)
              + cross_check_section(rows, context) + ops_section(rows) + profile_section(rows, context)
              + device_section(rows, list(on_devices), threads[0]))
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


def band_section(rows: list[dict]) -> list[str]:
    """Age MAE and gender accuracy per age band: where a model is weak shows here, not in the mean."""
    banded = [r for r in rows if r.get("bands")]
    if not banded:
        return []
    names = list(dict.fromkeys(b for r in banded for b in r["bands"]))
    lines = ["", "## Accuracy by age band", "", "Age MAE (years) / gender accuracy, by the true age; n per band in the "
             "header.", "", "| model | format | precision | " + " | ".join(
                 f"{b} (n={banded[0]['bands'].get(b, {}).get('n', 0)})" for b in names) + " |",
             "|" + " --- |" * (3 + len(names))]
    for r in banded:
        cells = [f"{r['bands'][b]['age_mae']:.2f} / {r['bands'][b]['gender_accuracy']:.3f}" if b in r["bands"] else "-"
                 for b in names]
        lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | " + " | ".join(cells) + " |")
    return lines


def interval_section(rows: list[dict]) -> list[str]:
    """Each row's accuracy with its 95% bootstrap interval over the test faces: a difference between two rows, or
    between a row and a target, that is small against these widths is one this test set cannot settle."""
    sure = [r for r in rows if r.get("ci95")]
    if not sure:
        return []
    lines = ["", "## How sure: 95% intervals", "",
             f"Each figure with its 95% percentile-bootstrap interval ({INTERVAL_RESAMPLES} resamples of the test "
             "faces, seeded). Rows of one model share their faces, so compare them by the change columns above, not "
             "by these widths.", "",
             "| model | format | precision | N | age MAE | CS(5) | gender acc |", "|" + " --- |" * 7]
    lines += [f"| {r['model']} | {r['format']} | {r['precision']} | {r['n']} | {with_interval(r, 'age_mae')} | "
              f"{with_interval(r, 'cs5', '.3f')} | {with_interval(r, 'gender_accuracy', '.3f')} |" for r in sure]
    return lines


def paired_section(rows: list[dict]) -> list[str]:
    """Differences on the same faces, each with its 95% paired interval: each exported file against its PyTorch
    model (what conversion and quantisation cost), and each model against the most accurate one here."""
    converted = [(r, "its PyTorch model", r["paired_vs_pytorch"]) for r in rows if r.get("paired_vs_pytorch")]
    references = [r for r in rows if r["format"] == "pytorch" and r.get("answers")]
    best = min(references, key=lambda r: (-r["n"], r["age_mae"]), default=None)
    between = [(r, f"{best['model']} (PyTorch)", paired(r, best)) for r in references if r is not best]
    compared = converted + [(r, against, d) for r, against, d in between if d]
    if not compared:
        return []

    def cell(difference: dict, metric: str) -> str:
        text = difference_text(difference, metric).replace("95% paired ", "")
        # A float file's rounding can differ one-sidedly yet far below the digits shown: bold only a visible change
        return f"**{text}**" if decided(difference[metric]) and shown_as_change(difference, metric) else text

    lines = ["", "## Differences on the same faces", "",
             f"First row minus the one it is held against, on the faces both were scored on, with the 95% paired "
             f"bootstrap interval ({INTERVAL_RESAMPLES} resamples of the shared faces, both rows resampled together, "
             "so what the two get right or wrong alike cancels). **Bold**: the interval leaves out 0, so this test set "
             f"tells the two apart. Per-face answers of every row: `{ANSWERS_FILE}`.", "",
             "| row | against | N | age MAE | CS(5) | gender acc |", "|" + " --- |" * 6]
    lines += [f"| {r['model']} {r['format']} {r['precision']} | {against} | {d['n']} | {cell(d, 'age_mae')} | "
              f"{cell(d, 'cs5')} | {cell(d, 'gender_accuracy')} |" for r, against, d in compared]
    return lines


def int8_speedups(rows: list[dict], threads: str) -> list[dict]:
    """Per model, format and device: each int8 variant's median latency against the fp32 file of that format."""
    found = []
    for r in rows:
        if not r["precision"].startswith("int8"):
            continue
        base = next((b for b in rows if (b.get("device"), b["model"], b["format"], b["precision"]) ==
                     (r.get("device"), r["model"], r["format"], "fp32")), None)
        fast, slow = (x and x.get("latency", {}).get(threads, {}) for x in (r, base))
        if fast and slow and fast.get("latency_ms_median") and slow.get("latency_ms_median"):
            found.append({"device": r.get("device", "host"), "model": r["model"], "format": r["format"],
                          "precision": r["precision"], "fp32_ms": slow["latency_ms_median"],
                          "int8_ms": fast["latency_ms_median"],
                          "speedup": slow["latency_ms_median"] / fast["latency_ms_median"],
                          "int8_x_floor": fast.get("multiple_of_floor"), "fp32_x_floor": slow.get("multiple_of_floor")})
    return found


def speed_section(rows: list[dict], context: dict) -> list[str]:
    """Cold start and memory per file, and int8 against fp32 in words that follow the figures of this machine."""
    t = str(context["thread_counts"][0])
    timed = [r for r in rows if r.get("latency", {}).get(t, {}).get("load_ms") is not None]
    lines = []
    if timed:
        lines += ["", f"## Cold start and memory ({t} thread(s))", "",
                  "| model | format | precision | load ms | first inference ms | steady ms p50 | peak MB |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
        for r in timed:
            timing = r["latency"][t]
            lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | {timing['load_ms']:.1f} | "
                         f"{timing['first_inference_ms']:.2f} | {timing['latency_ms_median']:.2f} | "
                         f"{_fmt(timing.get('peak_rss_mb'), '.0f')} |")
    speedups = int8_speedups(rows, t)
    if speedups:
        int8 = context["machine"].get("int8", "")
        lines += ["", f"## int8 against fp32 on this machine ({t} thread(s); int8 instructions: {int8})", ""]
        if any(s["int8_x_floor"] for s in speedups):
            lines += ["'x floor' measures each file against this CPU's ceiling in its own precision: an int8 file much "
                      "further from its floor than its fp32 file spends its time outside the arithmetic int8 speeds up "
                      "(memory traffic, per-op costs, float parts).", ""]
        for s in speedups:
            verdict = "faster" if s["speedup"] >= 1.05 else "slower" if s["speedup"] <= 0.95 else "no faster"
            factor = s["speedup"] if s["speedup"] >= 1 else 1 / s["speedup"]
            lines.append(f"- {s['model']} {s['format']} {s['precision']}: {s['int8_ms']:.2f} ms against "
                         f"{s['fp32_ms']:.2f} ms in fp32, so int8 is {factor:.2f}x {verdict} here"
                         + ("" if verdict != "no faster" else f" ({s['speedup']:.2f}x)")
                         + (f"; x floor {s['int8_x_floor']:.1f} in int8 against {s['fp32_x_floor']:.1f} in fp32"
                            if s["precision"] == "int8" and s["int8_x_floor"] and s["fp32_x_floor"] else "") + ".")
    return lines


CROSS_CHECK_TOLERANCE = 0.25  # our median within 25% of litert-benchmark's, on a machine that may be shared


def _delegate_coverage(delegate: dict) -> str:
    """'62/64 (XNNPACK, 2 partitions)', 'whole graph (GPU)', 'fell back to CPU' or '-'."""
    partitions = f", {delegate['partitions']} partitions" if delegate.get("partitions") else ""
    if delegate.get("of"):
        return f"{delegate['nodes']}/{delegate['of']} ({delegate['name']}{partitions})"
    if delegate.get("coverage") == 1.0:
        return f"whole graph ({delegate['name']})"
    if delegate.get("name"):
        return f"part of the graph ({delegate['name']}{partitions})"
    return "fell back to CPU" if delegate.get("fell_back") else "-"


def cross_check_section(rows: list[dict], context: dict) -> list[str]:
    """Our timer (benchmark/timing.py) against Google's litert-benchmark on the same .tflite files."""
    t = str(context["thread_counts"][0])
    checked = [(r, r["latency"][t]) for r in rows if r.get("latency", {}).get(t, {}).get("litert_benchmark")]
    if not checked:
        return []
    lines = ["", f"## Cross-check with litert-benchmark ({t} thread(s))", "",
             f"Host rows are timed by edge-age's benchmark/timing.py; Google's litert-benchmark timed the same files. "
             f"Agreement means the medians are within {CROSS_CHECK_TOLERANCE:.0%}. \"Whole graph on XNNPACK\" is "
             "litert-benchmark's `fully_accelerated`: no means some ops fell back to LiteRT's reference kernels "
             "between delegate partitions.", "",
             "| model | precision | ours ms p50 | litert-benchmark ms p50 | ratio | agree | whole graph on XNNPACK |",
             "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for r, timing in checked:
        theirs = timing["litert_benchmark"]
        if "median_ms" not in theirs:
            lines.append(f"| {r['model']} | {r['precision']} | {timing['latency_ms_median']:.2f} | - | - | "
                         f"not run: {theirs.get('error', '?')} | - |")
            continue
        ratio = timing["latency_ms_median"] / theirs["median_ms"]
        lines.append(f"| {r['model']} | {r['precision']} | {timing['latency_ms_median']:.2f} | {theirs['median_ms']:.2f} | "
                     f"{ratio:.2f} | {'yes' if abs(ratio - 1) <= CROSS_CHECK_TOLERANCE else 'NO'} | "
                     f"{ {True: 'yes', False: 'NO'}.get(theirs.get('fully_accelerated'), 'not said')} |")
    return lines


OPS_SHOWN = ("QUANTIZE", "DEQUANTIZE", "QuantizeLinear", "DequantizeLinear", "PAD", "CONCATENATION", "Concat")


def ops_section(rows: list[dict]) -> list[str]:
    """What each file computes: op counts, with the ones that show int8 islands (quantize/dequantize between
    integer and float parts) and workarounds (PAD) picked out."""
    counted = [r for r in rows if r.get("ops")]
    if not counted:
        return []
    lines = ["", "## Graph ops", "", "Quantize/dequantize ops inside a graph mark where it leaves integer arithmetic; "
             "a full-integer file should have them only at its input and before its float heads. Partitions: how "
             "many blocks LiteRT's CPU delegate (XNNPACK) made of a TFLite file on this host (1: one block; each "
             "further one hands over to LiteRT's built-in kernels and back).", "",
             "| model | format | precision | ops | " + " | ".join(OPS_SHOWN) + " | partitions |",
             "|" + " --- |" * (5 + len(OPS_SHOWN))]
    for r in counted:
        lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | {sum(r['ops'].values())} | "
                     + " | ".join(str(r["ops"].get(op, 0)) for op in OPS_SHOWN)
                     + f" | {r.get('delegate_partitions', '-')} |")
    return lines


def profile_section(rows: list[dict], context: dict) -> list[str]:
    """Where each file's time goes by kind of work (its runtime's own profiler), and for each int8/fp32 pair how much
    of the float time int8 can reach at all: the numbers behind an int8 speed-up that falls short."""
    t = str(context["thread_counts"][0])
    profiled = [r for r in rows if r.get("latency", {}).get(t, {}).get("time_by_op_kind_us")]
    if not profiled:
        return []
    kinds = sorted({k for r in profiled for k in r["latency"][t]["time_by_op_kind_us"]},
                   key=lambda k: -max(r["latency"][t]["time_by_op_kind_us"].get(k, 0) for r in profiled))
    lines = ["", f"## Where the time goes ({t} thread(s), onnxruntime's profiler)", "",
             "Microseconds per batch-1 call in each kind of kernel, after onnxruntime's graph optimisation. The "
             "profiler times every node and adds its own cost to the small ones, so its total exceeds the latency "
             "above: read shares and ratios here, times in the Results table. (LiteRT's Python API has no per-op "
             "profiler, and a TFLite file in one XNNPACK partition is one node to it: its 'x floor' above is the "
             "figure to read.)", "",
             "| model | format | precision | profiled us | " + " | ".join(kinds) + " |",
             "|" + " --- |" * 3 + " ---: |" * (1 + len(kinds))]
    for r in profiled:
        spent = r["latency"][t]["time_by_op_kind_us"]
        lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | {sum(spent.values()):.0f} | "
                     + " | ".join(f"{spent.get(k, 0):.0f}" for k in kinds) + " |")
    peak = context.get("peaks", {}).get(int(t)) or context.get("peaks", {}).get(t)
    pairs = [(r, b) for r in profiled if r["precision"] == "int8" for b in profiled
             if (b["model"], b["format"], b["precision"]) == (r["model"], r["format"], "fp32")]
    if pairs:
        lines.append("")
    for int8, fp32 in pairs:
        fast, slow = (x["latency"][t]["time_by_op_kind_us"] for x in (int8, fp32))
        conv_fast, conv_slow = (sum(v for k, v in d.items() if k.startswith("convolution")) for d in (fast, slow))
        rest_fast, rest_slow = sum(fast.values()) - conv_fast, sum(slow.values()) - conv_slow
        if min(conv_fast, conv_slow, rest_fast, rest_slow) <= 0:
            continue
        line = (f"- {int8['model']} {int8['format']}: convolutions {conv_slow:.0f} -> {conv_fast:.0f} us "
                f"({conv_slow / conv_fast:.2f}x faster in int8), everything else {rest_slow:.0f} -> {rest_fast:.0f} us "
                f"({rest_slow / rest_fast:.2f}x); convolutions are {conv_slow / sum(slow.values()):.0%} of the fp32 "
                f"profile")
        if peak:
            ceiling = peak["int8_gops"] / peak["fp32_gflops"]
            bound = sum(slow.values()) / (conv_slow / ceiling + rest_fast)
            line += (f". Were the convolutions {ceiling:.1f}x faster (this CPU's int8/fp32 ceiling ratio) and the "
                     f"rest as in the int8 file, int8 would be {bound:.2f}x fp32 by this profile")
        lines.append(line + ".")
    return lines


def device_section(rows: list[dict], on_devices: list[dict], threads: int) -> list[str]:
    """Host and device rows side by side, with the int8 speed-up on each device."""
    if not on_devices:
        return []
    t = str(threads)
    lines = ["", "## On devices (model-only timing)", "",
             "Latency of the model alone on a prepared input tensor (no decode, crop or resize); accuracy comes from "
             "the host, since the file is the same bytes. Delegate coverage: how many of the graph's nodes the "
             "delegate (XNNPACK, GPU, NNAPI) took, out of all, and in how many partitions; the rest ran on the "
             "CPU's built-in kernels.", "",
             "| device | model | format | precision | MB | age MAE (host) | ms p50 | ms p90 | load ms | first ms | "
             "delegate coverage | tool | status |", "|" + " --- |" * 13]
    facts = {}
    for r in [*(r for r in rows if r.get("latency", {}).get(t)), *on_devices]:
        timing = r.get("latency", {}).get(t, {})
        delegate = timing.get("delegate") or {}
        coverage = _delegate_coverage(delegate)
        median = timing.get("latency_ms_median", timing.get("latency_ms_mean"))
        lines.append(f"| {r.get('device', 'host')} | {r['model']} | {r['format']} | {r['precision']} | "
                     f"{_fmt(r.get('size_mb'))} | {_fmt(r.get('age_mae'))} | {_fmt(median)} | "
                     f"{_fmt(timing.get('latency_ms_p90'))} | {_fmt(timing.get('load_ms'), '.1f')} | "
                     f"{_fmt(timing.get('first_inference_ms'))} | {coverage} | {timing.get('tool', '-')} | "
                     f"{r.get('status', '-')}" + (f": {r['note']}" if r.get("note") else "") + " |")
        if r.get("device_facts"):
            facts[r["device"]] = r["device_facts"]
        if r.get("app_frame"):
            frame = r["app_frame"]
            stages = frame.get("stages", {})
            lines.append(f"| {r['device']} | {r['model']} | {r['format']} | {r['precision']} (whole frame in the app) | "
                         f"{_fmt(r.get('size_mb'))} | {_fmt(r.get('age_mae'))} | {_fmt(stages.get('frame', {}).get('median_ms'))} | "
                         f"{_fmt(stages.get('frame', {}).get('p90_ms'))} | - | - | "
                         + ", ".join(f"{k} {v['median_ms']:.2f}" for k, v in stages.items() if k != "frame")
                         + f" | demo app StageTimer | {frame.get('error', 'measured')} |")
    for name, fact in facts.items():
        lines.append(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in fact.items() if k != "versions")
                     + (f"; {', '.join(f'{k} {v}' for k, v in fact['versions'].items())}" if fact.get("versions") else ""))
    speedups = [s for s in int8_speedups(on_devices, t)]
    if speedups:
        lines += ["", "int8 against fp32 on each device:", ""]
        lines += [f"- {s['device']} {s['model']} {s['format']} {s['precision']}: {s['speedup']:.2f}x "
                  f"({s['fp32_ms']:.2f} -> {s['int8_ms']:.2f} ms)" for s in speedups]
    paired_timings = [r for r in on_devices if r.get("against_model_a_in_turns")]
    if paired_timings:
        lines += ["", "The app's int8 file against model A's int8 file, timed in turns at one thread on each device "
                      f"(the phone model's latency target: at most "
                      f"{PHONE_MODEL_TARGETS['latency_vs_model_a_at_most']:.0f}x):", ""]
    for r in paired_timings:
        pair = r["against_model_a_in_turns"]
        if pair["status"] != "measured":
            lines.append(f"- {r['device']}: {pair['status']}: {pair['note']}")
            continue
        lines.append(f"- {r['device']}: {pair['latency_ms_median']:.2f} ms against {pair['reference_latency_ms_median']:.2f} "
                     f"ms = **{pair['ratio']:.2f}x** (median of {pair['processes']} processes, "
                     f"{min(pair['ratio_per_process']):.2f}-{max(pair['ratio_per_process']):.2f}x; {pair['tool']})")
    return lines


def draw_device_plot(out_dir: Path, rows: list[dict], on_devices: list[dict], threads: int) -> list[str]:
    """Median latency per file on the host and on each device, grouped by format and precision."""
    if not on_devices:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = str(threads)
    measured = [r for r in [*rows, *on_devices] if r["format"] != "pytorch" and
                r.get("latency", {}).get(t, {}).get("latency_ms_median", r.get("latency", {}).get(t, {}).get("latency_ms_mean"))]
    if not measured:
        return []
    variants = list(dict.fromkeys(f"{r['model']}\n{r['format']} {r['precision']}" for r in measured))
    devices = list(dict.fromkeys(r.get("device", "host") for r in measured))
    fig, ax = plt.subplots(figsize=(max(8, len(variants) * 0.9), 5))
    width = 0.8 / len(devices)
    for d, device in enumerate(devices):
        mine = [r for r in measured if r.get("device", "host") == device]
        xs = [variants.index(f"{r['model']}\n{r['format']} {r['precision']}") + d * width for r in mine]
        heights = [r["latency"][t].get("latency_ms_median", r["latency"][t].get("latency_ms_mean")) for r in mine]
        ax.bar(xs, heights, width, color=f"C{d}", label=device)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(variants))], variants, fontsize=6, rotation=45, ha="right")
    ax.set_ylabel(f"median ms, batch 1, {t} thread(s), model only")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out_dir / "latency_by_device.png", dpi=120)
    plt.close(fig)
    return ["latency_by_device.png"]


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
