"""Benchmark every exported model and variant: accuracy on the whole test split, latency, throughput,
memory, size, parameters and FLOPs, with the CPU's compute floor as a reference line.

Export folders are found by their manifest.json. Each model's PyTorch checkpoint is the reference row.
Every measurement runs in a child process (benchmark/measure.py) with a fixed thread count, on inputs
prepared here, so preprocessing is never timed and runtimes never share a process.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_age.benchmark.claims import paired, phone_target_rows, recipe_summary
from edge_age.benchmark.timing import summarise_turns
from edge_age import formats
from edge_age.checkpoint import load_checkpoint
from edge_age.data import (apply_split, decoded_cache, load_labelled, load_split, resolve_data_dir,
                           resolve_run_data_dir)
from edge_age.io import sha256_file
from edge_age.manifest import Manifest, ManifestError, read_manifest
from edge_age.metrics import summarize
from edge_age.model_stats import count_flops, count_parameters
from edge_age.registry import model_from_config
from edge_age.runtimes import normalise_pixels

LATENCY_INPUT_IMAGES = 8  # distinct real faces cycled through the timed calls


@dataclass
class Scoring:
    """Which labelled faces the accuracy columns come from (see ``scored_images``)."""

    data: str | None = None
    labels: str | None = None
    split: str = "test"
    whole_set: bool = False
    limit: int | None = None
    align: bool = False  # raw photos: dlib finds and aligns the largest face first, as evaluate --align does


@dataclass
class ExportedModel:
    """One export folder: its manifest, the checkpoint it came from (None when missing or changed; then there is
    no PyTorch reference row) and what the benchmark needs to know of it."""

    label: str
    folder: Path
    manifest: Manifest
    checkpoint: Path | None
    family: str
    parameters: int
    flops: int
    recipe: dict = field(default_factory=dict)
    checkpoint_problem: str = ""
    weight_storage: str = ""  # "fp16" or "int8" for a checkpoint made by edge-age shrink-checkpoint


def family_of(model_name: str, options: dict, loss: dict) -> str:
    """Which line of the comparison a model belongs to: each registered model, and MA-SFV2's two ablations
    (plain ShuffleNetV2 without attention; L1 regression alone)."""
    if model_name == "ma_sfv2":
        if options.get("attention") is False:
            return "sfv2"
        if options.get("age_output") == "regression" and not loss.get("age_ce"):
            return "ma_sfv2-l1"
    return model_name


def _source_checkpoint(manifest: Manifest) -> tuple[Path | None, str, dict]:
    """The export's source checkpoint if it is there and is the one exported (sha256): (path, problem, payload)."""
    checkpoint = manifest.source_path("checkpoint")
    if checkpoint is None or not checkpoint.is_file():
        return None, f"source checkpoint {manifest.source.get('checkpoint')} is not here", {}
    if sha256_file(checkpoint) != manifest.source.get("checkpoint_sha256"):
        return None, f"{checkpoint} is not the checkpoint this export was made from (sha256 differs)", {}
    return checkpoint, "", load_checkpoint(checkpoint)


def find_exports(*roots: Path, log=print) -> list[ExportedModel]:
    """Every export folder at or under each root (found by manifest.json), with its checkpoint opened for stats."""
    manifests = []
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder; run `edge-age export --run RUN` first (it writes exports/RUN)")
        manifests += sorted([root / "manifest.json"] if (root / "manifest.json").is_file() else root.rglob("manifest.json"))
    found = []
    for path in manifests:
        try:
            manifest = read_manifest(path.parent)
        except ManifestError as err:
            if "not an edge-age export manifest" in str(err):
                continue  # another tool's manifest.json (e.g. the Android app's): not an export folder
            log(f"skipped {path.parent}: {err}")
            continue
        checkpoint, problem, payload = _source_checkpoint(manifest)
        recipe = payload.get("recipe") or {}
        model = model_from_config(manifest.model)  # parameters and FLOPs need the architecture, not the weights
        reads_age_as = getattr(model, "age_output", "age")
        if checkpoint is not None and manifest.header.get("age_output", "age") != reads_age_as:
            checkpoint, problem = None, (f"its files read the age as {manifest.header.get('age_output', 'age')!r}, "
                                         f"today's {manifest.model['name']} reads it as {reads_age_as!r}: export the "
                                         f"run again for a PyTorch row that matches the files")
        found.append(ExportedModel(label=path.parent.name, folder=path.parent, manifest=manifest, checkpoint=checkpoint,
                                   family=family_of(manifest.model["name"], manifest.model.get("options", {}),
                                                    recipe.get("loss", {})),
                                   parameters=count_parameters(model), flops=count_flops(model), recipe=recipe,
                                   checkpoint_problem=problem, weight_storage=payload.get("weight_storage", "")))
    if not found:
        raise FileNotFoundError(f"no export folders (manifest.json) under {', '.join(map(str, roots))}; run "
                                "`edge-age export --run RUN` first")
    return found


def scored_images(exported: ExportedModel, scoring: Scoring):
    """The labelled images a model is scored on, decoded at its input size, and where they came from in words:
    its run's ``scoring.split`` split by default; every image of --data/--labels with ``scoring.whole_set``, or
    when the run's split.json is not here (a bare checkpoint's export, a run published without its split)."""
    run = exported.manifest.source_path("run")
    split_file = exported.manifest.verified_split() or (run / "split.json" if run is not None else None)
    if scoring.whole_set or split_file is None or not split_file.is_file():
        if scoring.data is None and scoring.labels is None and not scoring.whole_set:
            where = (f"its run's split.json is not here ({split_file})" if split_file is not None else
                     "it was exported from a bare checkpoint, with no run and so no split")
            raise FileNotFoundError(f"{exported.label}: {where}; score it on a labelled set with --data DIR "
                                    "[--labels CSV] --whole-set")
        data = load_labelled(resolve_data_dir(scoring.data), scoring.labels)
        described = f"every image of {scoring.labels or data.root}"
    else:
        config = json.loads((run / "config.json").read_text()) if run and (run / "config.json").is_file() else {}
        data = apply_split(load_labelled(resolve_run_data_dir(scoring.data, config.get("data_root"), run)),
                           load_split(split_file), scoring.split)
        described = f"the {scoring.split} split of its run"
    if scoring.limit:
        data = data.sample(scoring.limit)
        described = f"a seeded sample of {len(data)} of " + described
    if scoring.align:
        return aligned_faces(data, exported.manifest.input["size"], described)
    return decoded_cache(data, exported.manifest.input["size"], verbose=False), described


def aligned_faces(data, size: int, described: str):
    """Raw photos through dlib (the largest face of each, aligned like a UTKFace chip), as ``evaluate --align``
    does; photos without a face are left out of the accuracy and counted in the description."""
    from edge_age.data import DecodedImages
    from edge_age.faces import FaceAligner, largest
    from edge_age.images import resize_square
    from edge_age.predict import find_faces

    aligner, kept, chips = FaceAligner(), [], []
    for index, path in enumerate(data.paths):
        face = largest(find_faces(path, aligner)[1])
        if face is not None:
            kept.append(index)
            chips.append(resize_square(face.chip, size))
    if not kept:
        raise ValueError(f"dlib found no face in any of the {len(data)} images ({described})")
    found = data.select(kept)
    pixels = np.stack(chips).astype(np.uint8)
    return DecodedImages(found, pixels), f"{described}, aligned by dlib ({len(kept)} of {len(data)} faces found)"


IN_TURNS_PROCESSES = 5  # fresh processes that each time the app's file and model A's in turns
LATENCY_PROCESSES = 3  # fresh processes that each time one file at one thread count; the middle reading is kept


def _child(args: list[str]) -> dict:
    """Run benchmark/measure.py in a fresh process; its last stdout line is JSON."""
    proc = subprocess.run([sys.executable, "-m", "edge_age.benchmark.measure", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no error output"])[-1]
        raise RuntimeError(last[:400])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _latency(args: list[str]) -> dict:
    """One file's latency, read in LATENCY_PROCESSES fresh processes: the reading with the middle median is kept,
    with every process's median beside it. Each process lays the model out in memory anew, and on the AMD VM
    (2026-12-06) that alone moved one int8 file's median between 1.81 and 2.37 ms over 20 processes."""
    readings = [_child(args) for _ in range(LATENCY_PROCESSES)]
    kept = dict(sorted(readings, key=lambda r: r["latency_ms_median"])[len(readings) // 2])
    kept["latency_ms_median_per_process"] = [r["latency_ms_median"] for r in readings]
    return kept


def measure_peaks(thread_counts: list[int]) -> dict[int, dict]:
    """This CPU's fp32 and int8 matrix-product ceilings at each thread count (the compute floor)."""
    return {threads: _child(["peak", "-", "--threads", str(threads)]) for threads in thread_counts}


def _variant_rows(exported: ExportedModel) -> list[dict]:
    """The PyTorch reference row, then one row per file in the manifest, each file checked against its sha256
    and size first: a file that changed since export is reported as such, never measured as the export."""
    if exported.checkpoint is not None:
        rows = [{"format": "pytorch", "precision": "fp32", "file": exported.checkpoint, "status": "reference",
                 "reason": "", "bytes": exported.checkpoint.stat().st_size,
                 "sha256": exported.manifest.source.get("checkpoint_sha256")}]
        if exported.weight_storage:
            rows[0]["note"] = (f"weights stored in {exported.weight_storage} (edge-age shrink-checkpoint), computed "
                               "in float32; the size is the stored file's")
    else:
        rows = [{"format": "pytorch", "precision": "fp32", "file": "", "status": "no reference",
                 "reason": exported.checkpoint_problem, "bytes": None, "sha256": None}]
    for entry in exported.manifest.files:
        row = {"format": entry.format, "precision": entry.precision, "file": exported.manifest.path(entry),
               "status": entry.status, "reason": entry.reason, "bytes": entry.bytes, "sha256": entry.sha256}
        if entry.status != "export-failed":
            problem = exported.manifest.verify(entry)
            if problem:
                row.update(status="file changed", reason=problem)
        rows.append(row)
    return rows


def benchmark_model(exported: ExportedModel, scoring: Scoring, thread_counts: list[int], runs: int, batch: int,
                    peaks: dict[int, dict], log=print) -> list[dict]:
    """All rows of one export folder, measured."""
    spec = exported.manifest.input
    test, scored_on = scored_images(exported, scoring)
    log(f"  scored on {scored_on} ({len(test)} images)")
    ages, genders = test.data.ages, test.data.genders
    results = []
    with tempfile.TemporaryDirectory(prefix="edge-age-bench-") as tmp:
        tmp = Path(tmp)
        pixels_path, inputs_path = tmp / "pixels.npy", tmp / "latency_inputs.npy"
        np.save(pixels_path, np.asarray(test.pixels))
        np.save(inputs_path, normalise_pixels(test.pixels[:LATENCY_INPUT_IMAGES], spec["mean"], spec["std"]))
        reference = None
        for variant in _variant_rows(exported):
            row = {"model": exported.label, "family": exported.family, "model_name": exported.manifest.model["name"],
                   "scored_on": scored_on,
                   "input_size": spec["size"], "parameters": exported.parameters, "gflops": exported.flops / 1e9,
                   "format": variant["format"], "precision": variant["precision"], "file": str(variant["file"]),
                   "sha256": variant["sha256"],
                   "export_status": variant["status"], "export_reason": variant["reason"],
                   "size_mb": variant["bytes"] / 1e6 if variant["bytes"] else None, "latency": {},
                   "recipe_summary": recipe_summary(exported.recipe), "note": variant.get("note")}
            name = f"{exported.label} {variant['format']} {variant['precision']}"
            fmt = None if variant["format"] == "pytorch" else formats.get(variant["format"])
            if fmt is not None and fmt.runner is None:
                row["status"] = "not measured"
                row["note"] = fmt.not_runnable_because
                results.append(row)
                log(f"  {name}: not measured ({fmt.not_runnable_because})")
                continue
            if fmt is not None and fmt.op_counts is not None and variant["status"] not in ("export-failed", "file changed"):
                try:
                    row["ops"] = fmt.op_counts(variant["file"])
                    if fmt.delegate_partitions is not None:
                        row["delegate_partitions"] = fmt.delegate_partitions(variant["file"])
                except Exception as err:  # a damaged graph: the run below says why in the row; the count is a side note
                    row["ops_note"] = f"graph not readable ({type(err).__name__}: {err})"
            if variant["status"] in ("export-failed", "file changed", "no reference"):
                row["status"] = variant["status"].replace("-", " ")
                row["note"] = variant["reason"]
                results.append(row)
                log(f"  {name}: {row['status']} ({variant['reason'][:120]})")
                continue
            try:
                out_path = tmp / "predictions.npz"
                predicted = _child(["predict", str(variant["file"]), "--pixels", str(pixels_path), "--out", str(out_path)])
                with np.load(out_path) as saved:
                    age, gender = saved["age"], saved["gender_prob"]
                row.update(summarize(age, ages, gender, genders, intervals=True))
                row["answers"] = {"faces": list(test.data.files), "age": age, "female_prob": gender,
                                  "true_age": ages, "true_gender": genders}
                row["predict_peak_rss_mb"] = predicted["peak_rss_mb"]
                for threads in thread_counts:
                    timing = _latency(["latency", str(variant["file"]), "--inputs", str(inputs_path), "--threads",
                                       str(threads), "--runs", str(runs), "--batch", str(batch)])
                    peak = peaks.get(threads)
                    if peak:
                        ceiling = peak["int8_gops"] if _integer_compute(variant) else peak["fp32_gflops"]
                        timing["floor_ms"] = exported.flops / (ceiling * 1e9) * 1000
                        timing["multiple_of_floor"] = timing["latency_ms_median"] / timing["floor_ms"]
                    if threads == thread_counts[0] and variant["format"] == "tflite":
                        timing["litert_benchmark"] = litert_benchmark(variant["file"], threads, runs)
                    if threads == thread_counts[0] and fmt is not None and fmt.time_by_op_kind is not None:
                        timing.update(_child(["profile", str(variant["file"]), "--threads", str(threads),
                                              "--runs", str(runs)]))
                    row["latency"][str(threads)] = timing
            except RuntimeError as err:
                row.update(status="failed to run", note=str(err))
                results.append(row)
                log(f"  {name}: failed to run: {err}")
                continue
            if variant["format"] == "pytorch":
                reference = row
            if reference is not None and reference is not row:
                row["mae_change_vs_pytorch"] = row["age_mae"] - reference["age_mae"]
                row["gender_change_points_vs_pytorch"] = 100 * (row["gender_accuracy"] - reference["gender_accuracy"])
                row["paired_vs_pytorch"] = paired(row, reference)
            row["status"] = {"reference": "reference", "pass": "pass", "fail": "failed parity"}.get(variant["status"],
                                                                                                   variant["status"])
            results.append(row)
            first = row["latency"][str(thread_counts[0])]
            log(f"  {name}: MAE {row['age_mae']:.2f}, gender {row['gender_accuracy']:.3f}, "
                f"{first['latency_ms_median']:.2f} ms median at {thread_counts[0]} thread(s)")
    return results


def litert_benchmark(path: Path, threads: int, runs: int) -> dict:
    """Google's own timing of a .tflite file (litert-benchmark, installed with ai-edge-litert >= 2.3), to cross-check
    ours: {"median_ms", ...} or {"error": why}."""
    tool = shutil.which("litert-benchmark") or str(Path(sys.executable).with_name("litert-benchmark"))
    if not Path(tool).exists():
        return {"error": "litert-benchmark is not installed (ai-edge-litert >= 2.3)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([tool, "--model", str(path), "--num_runs", str(runs), "--warmup_runs", "10",
                               "--num_threads", str(threads), "--result_json", str(out)], capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
        result = json.loads(out.read_text())
    latency = result["latency"]
    # fully_accelerated: the CPU accelerator (XNNPACK) took every op; False means some run in LiteRT's reference
    # kernels, between delegate partitions.
    return {"median_ms": latency["median_ms"], "init_ms": latency["init_ms"], "runs": latency["num_runs"],
            "fully_accelerated": result.get("fully_accelerated")}


def _integer_compute(variant: dict) -> bool:
    """Full-integer files compute in int8; fp16 and dynamic-range files compute (mostly) in float here."""
    return variant["precision"] == "int8" and variant["format"] in ("onnx", "tflite")


def parse_threads(text: str) -> list[int]:
    """'1,all' -> [1, number of cores]."""
    counts = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if item == "all":
            counts.append(os.cpu_count() or 1)
        elif item.isdigit() and int(item) > 0:
            counts.append(int(item))
        else:
            raise ValueError(f"--threads takes positive numbers or 'all', comma-separated; got {item!r}")
    return list(dict.fromkeys(counts))


def device_rows(device, exported: list[ExportedModel], host_rows: list[dict], threads: int, runs: int,
                log=print, app_and_model_a: tuple[Path, Path] | None = None) -> list[dict]:
    """Every exported file timed on ``device`` (model-only), with accuracy taken from the host's row of the same
    file (the same bytes give the same answers). A device that cannot be used, or cannot time a format, gives
    rows with a status and why. With ``app_and_model_a`` (the app's int8 file and model A's), the two are also
    timed in turns at one thread on the device, for the phone model's latency target there; the result goes on
    the app file's row (``against_model_a_in_turns``)."""
    from edge_age.benchmark.devices import DeviceError

    planned = []
    for model in exported:
        for entry in model.manifest.files:
            if entry.status == "export-failed":
                continue
            path = model.manifest.path(entry)
            host = next((r for r in host_rows if r["model"] == model.label and r["file"] == str(path)), {})
            base = {"device": device.name, "model": model.label, "family": model.family, "format": entry.format,
                    "precision": entry.precision, "file": str(path), "size_mb": (entry.bytes or 0) / 1e6,
                    "parameters": model.parameters, "gflops": model.flops / 1e9,
                    "accuracy_from": "host (same file)", **{k: host.get(k) for k in ("n", "age_mae", "cs5",
                                                                                        "gender_accuracy")}}
            if host.get("status") in ("file changed", "failed to run"):
                planned.append((base, None, f"not timed: {host['status']} on the host"))
            else:
                planned.append((base, path, None))
    rows = []
    try:
        with device:
            log(f"device {device.name}: {json.dumps(device.facts)}")
            files = [path for _, path, _ in planned if path is not None]
            timings = iter(device.time_files(files, threads, runs, 10))
            frames = _app_frames(device, files, runs, threads, log)
            for base, path, skipped in planned:
                result = {"status": "not measured", "note": skipped} if path is None else next(timings)
                rows.append({**base, "device_facts": device.facts, "status": result.pop("status"),
                             "note": result.pop("note", ""), "latency": {str(threads): result}})
                if path is not None and path.name in frames:
                    rows[-1]["app_frame"] = frames[path.name]
                log(f"  {device.name} {base['model']} {base['format']} {base['precision']}: {rows[-1]['status']} "
                    + (f"{result['latency_ms_median'] if result.get('latency_ms_median') is not None else result.get('latency_ms_mean', 0):.2f} ms"
                       if rows[-1]["status"] == "measured" else rows[-1]["note"]))
            if app_and_model_a:
                app_row = next((r for r in rows if r["file"] == str(app_and_model_a[0])), None)
                if app_row is not None:
                    log(f"  {device.name}: the app's int8 file and model A's in turns (1 thread, "
                        f"{IN_TURNS_PROCESSES} processes) ...")
                    pair = device.time_in_turns(*app_and_model_a, 1, runs, 10, IN_TURNS_PROCESSES)
                    app_row["against_model_a_in_turns"] = pair
                    log(f"  {device.name}: " + (f"{pair['ratio']:.2f}x model A's latency" if pair["status"] == "measured"
                                                else f"{pair['status']}: {pair['note']}"))
    except DeviceError as err:
        log(f"device {device.name}: {err}")
        rows = [{**base, "status": "device unavailable", "note": str(err), "latency": {}} for base, _, _ in planned]
    return rows


def _app_int8_sha256(assets: Path | None, log) -> str | None:
    """The sha256 of the app's int8 model file, or None (with a line saying why) when it cannot be read."""
    from edge_age.export import android

    try:
        return android.shipped_sha256(assets or android.DEFAULT_ASSETS, "int8")
    except ValueError as err:
        log(f"phone-model targets not judged: {err}")
        return None


def _app_against_model_a(rows: list[dict], app_sha256: str | None, runs: int, log) -> dict | None:
    """The app's int8 file and model A's int8 TFLite timed in turns at one thread (timing.py --against), for the
    phone-model targets' latency ratio; None when either was not measured here or the timing failed.

    Turns within one process cancel the machine's drift, not the luck of one process's memory layout: on the AMD
    VM of 2026-12-06 the app's file ran anywhere from 1.81 to 2.37 ms a call from one fresh process to the next. So
    the pair is timed in IN_TURNS_PROCESSES fresh processes and the median of their ratios is the one judged."""
    app, model_a = phone_target_rows(rows, app_sha256)
    if not (app and model_a and app.get("latency") and model_a.get("latency")):
        return None
    log(f"timing the app's int8 file and {model_a['model']}'s in turns (1 thread, {IN_TURNS_PROCESSES} processes) ...")
    try:
        readings = [_child(["turns", app["file"], "--against", model_a["file"], "--threads", "1", "--runs", str(runs)])
                    for _ in range(IN_TURNS_PROCESSES)]
    except RuntimeError as err:
        log(f"  timing in turns failed: {err}; the latency ratio comes from the separate runs")
        return None
    return summarise_turns(readings)


def _app_frames(device, files: list[Path], runs: int, threads: int, log) -> dict[str, dict]:
    """Whole-frame stage times from the demo app's benchmark mode, for the timed files the app ships."""
    if not getattr(device, "app_stages", False):
        return {}
    import tempfile

    from edge_age.benchmark.devices import app_stage_times
    from edge_age.export import android

    shipped = {e["file"] for e in json.loads((android.DEFAULT_ASSETS / "manifest.json").read_text())["files"]}
    names = [p.name for p in files if p.name in shipped]
    if not names:
        log(f"  {device.name}: --app-stages: none of the timed files is in the app's assets ({', '.join(sorted(shipped))})")
        return {}
    faces = json.loads(android.DEFAULT_GOLDEN.read_text())["faces"]
    with tempfile.TemporaryDirectory() as tmp:
        faces_file = Path(tmp) / "faces.json"
        faces_file.write_text(json.dumps({"faces": faces}))
        return app_stage_times(device, names, faces_file, max(10, runs // 2), threads)


def run_benchmark(exported: list[ExportedModel], out_dir: Path, scoring: Scoring, thread_counts: list[int], runs: int,
                  batch: int, command: str, log=print, devices: list = (), app_assets: Path | None = None) -> list[dict]:
    """Measure every model on this machine (and on each device), judge the claims, and write report.md,
    results.csv/json and the plots. ``app_assets``: the Android app's assets folder (default the demo's), whose
    int8 file the phone-model targets are judged on."""
    from edge_age.benchmark.claims import judge_claims
    from edge_age.benchmark.report import write_results
    from edge_age.machine import describe_machine

    log(f"benchmarking {len(exported)} model(s): {', '.join(e.label for e in exported)}; threads {thread_counts}")
    log("measuring this CPU's compute ceiling ...")
    peaks = measure_peaks(thread_counts)
    rows = []
    for number, model in enumerate(exported, 1):
        log(f"[{number}/{len(exported)}] {model.label} ({model.family}, {model.manifest.input['size']} px)")
        try:
            rows += benchmark_model(model, scoring, thread_counts, runs, batch, peaks, log)
        except (FileNotFoundError, ValueError) as err:  # one model that cannot be scored is one row, not the end
            log(f"  {model.label}: not measured: {err}")
            rows.append({"model": model.label, "family": model.family, "model_name": model.manifest.model["name"],
                         "format": "-", "precision": "-", "status": "not measured", "note": str(err),
                         "parameters": model.parameters, "gflops": model.flops / 1e9, "latency": {}})
    for row in rows:
        row["device"] = "host"
    app_sha256 = _app_int8_sha256(app_assets, log)
    app, model_a = phone_target_rows(rows, app_sha256)
    pair = (Path(app["file"]), Path(model_a["file"])) if app and model_a else None
    on_devices = [r for device in devices
                  for r in device_rows(device, exported, rows, thread_counts[0], runs, log, app_and_model_a=pair)]
    in_turns = _app_against_model_a(rows, app_sha256, runs, log)
    claims = judge_claims(rows, str(thread_counts[0]), app_int8_sha256=app_sha256, app_in_turns=in_turns)
    machine = describe_machine()
    context = {"machine": machine, "versions": machine["versions"], "thread_counts": thread_counts, "runs": runs,
               "latency_processes": LATENCY_PROCESSES, "batch": batch, "split": scoring.split, "limit": scoring.limit,
               "command": command,
               "scored_on": sorted({r["scored_on"] for r in rows if r.get("scored_on")}),
               "peaks": {str(t): p for t, p in peaks.items()}, "app_int8_against_model_a_in_turns": in_turns}
    write_results(out_dir, rows, claims, context, on_devices)
    for claim in claims:
        log(f"claim {claim['claim']}: {claim['verdict']} - {claim['evidence']}")
    log(f"wrote {out_dir / 'report.md'}, results.csv, results.json and plots")
    return rows + on_devices
