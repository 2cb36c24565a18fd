"""The pipeline end to end on real faces (tiny settings), and the benchmark's numbers checked against
predictions made independently here."""
import csv
import json
import re
import shutil

import numpy as np
import pytest

from edge_age.checkpoint import load_model
from edge_age.cli import main
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split
from edge_age.inference import predict
from edge_age.benchmark.claims import paired
from edge_age.benchmark.report import read_answers
from edge_age.metrics import summarize
from edge_age.export.exporter import EXPORTER_REVISION
from edge_age.io import sha256_file

TINY = ["--epochs", "1", "--subset", "60", "--img-size", "32", "--batch-size", "8", "--threads", "1", "--bench-runs", "10"]


@pytest.fixture(scope="module")
def pipeline_dirs(small_faces_dir, tmp_path_factory):
    """One pipeline run (custom CNN, MA-SFV2 and both ablations) on 60 real chips. VGG16 is left out to keep the
    suite short: its export and training are covered by test_export and test_train."""
    root = tmp_path_factory.mktemp("pipeline")
    dirs = {"runs": root / "runs", "exports": root / "exports", "out": root / "report"}
    args = ["pipeline", "--data", str(small_faces_dir), "--models", "custom_cnn,ma_sfv2", "--ablation", "--formats", "tflite",
            "--precisions", "fp32,int8", "--runs-dir", str(dirs["runs"]), "--exports-dir", str(dirs["exports"]),
            "--out", str(dirs["out"]), *TINY]
    assert main(args) == 0
    dirs["args"] = args
    # Later tests rerun the pipeline for one model, which rewrites the report: keep the first run's rows
    dirs["rows"] = json.loads((dirs["out"] / "results.json").read_text())["rows"]
    return dirs


def test_pipeline_trains_exports_and_reports_every_model(pipeline_dirs):
    runs = sorted(p.name for p in pipeline_dirs["runs"].iterdir())
    assert runs == ["custom_cnn-quick", "ma_sfv2-quick", "ma_sfv2-quick-l1", "ma_sfv2-quick-sfv2"]
    out = pipeline_dirs["out"]
    for name in ("report.md", "results.csv", "results.json", "mae_vs_latency.png", "mae_vs_size.png", "cs_curves.png",
                 "gender_vs_latency.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    families = {r["family"] for r in rows}
    assert families == {"custom_cnn", "ma_sfv2", "sfv2", "ma_sfv2-l1"}
    # Main models: PyTorch + TFLite fp32/int8-dynamic/int8 (ONNX is covered by test_export); ablations: PyTorch + ONNX fp32.
    assert sum(r["family"] == "ma_sfv2" for r in rows) == 4 and sum(r["family"] == "sfv2" for r in rows) == 2
    for row in rows:
        assert row["status"] in ("reference", "pass", "failed parity"), row
        timing = row["latency"]["1"]
        assert timing["runs"] == 10 and 0 < timing["latency_ms_p10"] <= timing["latency_ms_median"] <= timing["latency_ms_p90"]
        per_process = timing["latency_ms_median_per_process"]  # three fresh processes, the middle reading kept
        assert len(per_process) == 3 and timing["latency_ms_median"] == sorted(per_process)[1]
        assert timing["multiple_of_floor"] == pytest.approx(timing["latency_ms_median"] / timing["floor_ms"])
        assert timing["throughput_images_per_s"] > 0 and timing["peak_rss_mb"] > 10
        assert row["gflops"] > 0 and row["parameters"] > 0 and row["size_mb"] > 0
        assert all(low <= row[metric] <= high for metric, (low, high) in row["ci95"].items()), row
        if row["format"] == "tflite":
            assert row["delegate_partitions"] >= 1 and sum(row["ops"].values()) > 0, row
            if row["precision"] in ("fp32", "int8"):  # XNNPACK takes the float and full-int8 graphs whole
                assert row["delegate_partitions"] == 1, (row["model"], row["precision"], row["ops"])
        if row["format"] == "onnx":  # onnxruntime's own profile, by kind of work
            assert sum(v for k, v in timing["time_by_op_kind_us"].items() if k.startswith("convolution")) > 0, row
        if row["format"] == "tflite" and row["precision"] == "int8":  # integer from the input to the float heads
            assert row["ops"].get("DEQUANTIZE") == 1, (row["model"], row["ops"])
    for model in {r["model"] for r in rows}:  # a file's process runs it without torch: its memory is the file's own
        reference = next(r for r in rows if r["model"] == model and r["format"] == "pytorch")
        exported = [r for r in rows if r["model"] == model and r["format"] != "pytorch"]
        assert all(r["latency"]["1"]["peak_rss_mb"] < reference["latency"]["1"]["peak_rss_mb"] - 100 for r in exported)
    assert [c["claim"] for c in results["claims"]] == [1, 2, 3, 4, 5, 6, 7]
    assert results["claims"][0]["verdict"] == "not measured" and "vgg16_transfer" in results["claims"][0]["evidence"]
    for claim in results["claims"][1:6]:  # the seeds' other claims have what they need, so they are judged with numbers
        assert claim["verdict"] != "not measured" and any(ch.isdigit() for ch in claim["evidence"]), claim
    # The phone-model targets are judged on the file the demo app ships, which this tiny pipeline did not make
    assert results["claims"][6]["verdict"] == "not measured" and "not among the measured" in results["claims"][6]["evidence"]
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    report = (out / "report.md").read_text()
    assert "## The claims" in report and "MORPH2" in report and "Compute floor" in report and "partitions |" in report
    assert "## Where the time goes" in report and "## How sure: 95% intervals" in report
    assert not (out / ".partial").exists()


def test_benchmark_accuracy_matches_predictions_made_here(pipeline_dirs, small_faces_dir):
    """The PyTorch row's MAE and gender accuracy equal an independent evaluation of the same checkpoint."""
    rows = json.loads((pipeline_dirs["out"] / "results.json").read_text())["rows"]
    run_dir = pipeline_dirs["runs"] / "custom_cnn-quick"
    model, _ = load_model(run_dir / "best.pt")
    test = decoded_cache(apply_split(load_labelled(small_faces_dir), load_split(run_dir / "split.json"), "test"), 32)
    out = predict(model, test.pixels)
    expected = summarize(out["age"], test.data.ages, out["gender_prob"], test.data.genders)
    row = next(r for r in rows if r["model"] == "custom_cnn-quick" and r["format"] == "pytorch")
    assert row["n"] == expected["n"] == len(test)
    assert row["age_mae"] == pytest.approx(expected["age_mae"], abs=1e-4)
    assert row["gender_accuracy"] == pytest.approx(expected["gender_accuracy"])
    tflite_row = next(r for r in rows if r["model"] == "custom_cnn-quick" and r["format"] == "tflite" and r["precision"] == "fp32")
    assert tflite_row["age_mae"] == pytest.approx(row["age_mae"], abs=1e-3)  # same answers through LiteRT


def test_every_rows_answers_are_kept_face_by_face_and_compared_in_pairs(pipeline_dirs, small_faces_dir, tmp_path):
    """answers.npz holds each row's answer for each face (the PyTorch row's equal a prediction made here, face by
    face); each exported file is compared with its PyTorch model on the same faces, and the claims and report
    carry those paired differences."""
    out = pipeline_dirs["out"]
    rows = read_answers(out)
    run_dir = pipeline_dirs["runs"] / "custom_cnn-quick"
    model, _ = load_model(run_dir / "best.pt")
    test = decoded_cache(apply_split(load_labelled(small_faces_dir), load_split(run_dir / "split.json"), "test"), 32)
    reference = next(r for r in rows if r["model"] == "custom_cnn-quick" and r["format"] == "pytorch")
    by_face = dict(zip(reference["answers"]["faces"], reference["answers"]["age"]))
    assert sorted(by_face) == sorted(test.data.files)
    here = predict(model, test.pixels)["age"]
    assert [by_face[face] for face in test.data.files] == pytest.approx(here, abs=1e-4)
    labels = dict(zip(reference["answers"]["faces"], zip(reference["answers"]["true_age"], reference["answers"]["true_gender"])))
    assert labels == dict(zip(test.data.files, zip(test.data.ages, test.data.genders)))
    int8 = next(r for r in rows if r["model"] == "custom_cnn-quick" and r["format"] == "tflite" and r["precision"] == "int8")
    again = paired(int8, reference)  # from the saved answers: the same as the run worked out
    for metric in ("age_mae", "cs5", "gender_accuracy"):
        saved = int8["paired_vs_pytorch"][metric]
        assert again[metric]["difference"] == pytest.approx(saved["difference"])
        assert again[metric]["ci95"] == pytest.approx(saved["ci95"])
    assert again["n"] == int8["n"] == int8["paired_vs_pytorch"]["n"]
    assert again["age_mae"]["difference"] == pytest.approx(int8["mae_change_vs_pytorch"])
    claims = json.loads((out / "results.json").read_text())["claims"]
    assert "paired on the" in claims[2]["evidence"] and "95% paired" in claims[5]["evidence"]
    assert "## Differences on the same faces" in (out / "report.md").read_text()
    shutil.copy(out / "results.json", tmp_path / "results.json")  # a report from before answers were kept
    with pytest.raises(FileNotFoundError, match="kept no per-face answers; run `edge-age benchmark` again"):
        read_answers(tmp_path)


def test_a_second_pipeline_run_reuses_training_and_exports(pipeline_dirs, capsys):
    best = pipeline_dirs["runs"] / "ma_sfv2-quick" / "best.pt"
    manifest = pipeline_dirs["exports"] / "ma_sfv2-quick" / "manifest.json"
    stamps = (best.stat().st_mtime_ns, manifest.stat().st_mtime_ns)
    assert main([*pipeline_dirs["args"], "--models", "ma_sfv2"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"ma_sfv2-quick +already trained \(.*\), already exported", printed), printed
    assert (best.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == stamps


def test_an_export_from_an_older_exporter_is_redone(pipeline_dirs, capsys):
    """An export made before a fix to the exporter (an older revision) must not be reused with its old files."""
    manifest_path = pipeline_dirs["exports"] / "custom_cnn-quick" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["exporter_revision"] == EXPORTER_REVISION
    manifest["exporter_revision"] = EXPORTER_REVISION - 1
    manifest_path.write_text(json.dumps(manifest))
    assert main([*pipeline_dirs["args"], "--models", "custom_cnn"]) == 0
    assert re.search(r"custom_cnn-quick +already trained \(.*\), exported", capsys.readouterr().out)
    assert json.loads(manifest_path.read_text())["exporter_revision"] == EXPORTER_REVISION


def test_a_broken_file_is_reported_and_the_others_still_measured(pipeline_dirs, tmp_path, capsys):
    from edge_age.io import sha256_file

    export = tmp_path / "broken"
    shutil.copytree(pipeline_dirs["exports"] / "custom_cnn-quick", export)
    broken_file = export / "custom_cnn_int8.tflite"
    broken_file.write_bytes(broken_file.read_bytes()[:1000])  # truncated, and listed as such: a bad export, not tampering
    manifest = json.loads((export / "manifest.json").read_text())  # keep two files: one to break, one to measure
    manifest["files"] = [f for f in manifest["files"] if f["file"] in ("custom_cnn_int8.tflite", "custom_cnn_fp32.tflite")]
    for entry in manifest["files"]:
        if entry["file"] == broken_file.name:
            entry.update(bytes=1000, sha256=sha256_file(broken_file))
    (export / "manifest.json").write_text(json.dumps(manifest))
    assert main(["benchmark", "--exports", str(export), "--threads", "1", "--runs", "10", "--out", str(tmp_path / "r")]) == 1
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    broken = next(r for r in rows if r["format"] == "tflite" and r["precision"] == "int8")
    assert broken["status"] == "failed to run" and "LiteRT cannot load it" in broken["note"]
    assert len(rows) == 3 and all("age_mae" in r for r in rows if r is not broken and r["format"] != "pytorch")


def test_a_changed_file_fails_the_benchmark(pipeline_dirs, tmp_path):
    export = tmp_path / "changed"
    shutil.copytree(pipeline_dirs["exports"] / "custom_cnn-quick", export)
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["file"] == "custom_cnn_fp32.tflite"]
    (export / "manifest.json").write_text(json.dumps(manifest))
    changed = export / "custom_cnn_fp32.tflite"
    changed.write_bytes(changed.read_bytes()[:1000])
    assert main(["benchmark", "--exports", str(export), "--threads", "1", "--runs", "10", "--out", str(tmp_path / "r")]) == 1
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["rows"]
    assert [r["status"] for r in rows if r["format"] == "tflite"] == ["file changed"]


def test_phone_model_targets_are_judged_on_the_apps_file_against_model_a(pipeline_dirs):
    """Claim 7 on the pipeline's measured rows, with MA-SFV2's int8 TFLite standing in for the app's file."""
    from edge_age.benchmark.claims import judge_claims

    rows = pipeline_dirs["rows"]
    app = next(r for r in rows if r["model"] == "ma_sfv2-quick" and r["format"] == "tflite" and r["precision"] == "int8")
    model_a = next(r for r in rows if r["model"] == "custom_cnn-quick" and r["format"] == "tflite" and r["precision"] == "int8")
    assert app["sha256"] == sha256_file(app["file"])  # rows carry the manifest's (verified) digest

    def edited_rows(app_row, model_a_ms=None):
        edited = [app_row if r is app else r for r in rows]
        if model_a_ms is not None:
            edited = [dict(r, latency={"1": {"latency_ms_median": model_a_ms}}) if r is model_a else r for r in edited]
        return edited

    def judged(app_row, model_a_ms=None):
        claim = judge_claims(edited_rows(app_row, model_a_ms), "1", app_int8_sha256=app["sha256"])[6]
        return claim["verdict"], claim["evidence"].split("; ")

    verdict, evidence = judged(app)
    ratio = app["latency"]["1"]["latency_ms_median"] / model_a["latency"]["1"]["latency_ms_median"]
    assert len(evidence) == 6 and evidence[0].startswith(f"ma_sfv2-quick tflite int8 on {app['n']} images: MAE {app['age_mae']:.3f}")
    assert f"= {ratio:.2f}x" in evidence[5] and evidence[5].endswith(": met" if ratio <= 2 else ": missed")
    assert verdict != "holds"  # a 32 px model trained one epoch on 42 faces is far from MAE 4.5
    # The numbers, each met exactly at its boundary; then each missed in turn, alone
    at_target = dict(app, age_mae=4.5, cs5=0.68, gender_accuracy=0.945, size_mb=5.0, mae_change_vs_pytorch=-0.1)
    model_a_ms = app["latency"]["1"]["latency_ms_median"] / 2
    verdict, evidence = judged(at_target, model_a_ms)
    assert verdict == "holds" and all(e.endswith(": met") for e in evidence), evidence
    misses = [dict(age_mae=4.51), dict(cs5=0.679), dict(gender_accuracy=0.944), dict(size_mb=5.01),
              dict(mae_change_vs_pytorch=0.11)]
    for index, miss in enumerate(misses):
        verdict, evidence = judged({**at_target, **miss}, model_a_ms)
        assert verdict == "holds for 5 of 6" and evidence[index].endswith(": missed"), (miss, evidence)
    verdict, evidence = judged(at_target, model_a_ms * 0.99)
    assert verdict == "holds for 5 of 6" and evidence[5].endswith(": missed")
    # Each accuracy figure carries its interval and says whether the target lies inside it
    near = {**at_target, "age_mae": 4.52, "ci95": {**app["ci95"], "age_mae": [4.36, 4.69]}}
    verdict, evidence = judged(near, model_a_ms)
    assert evidence[0].endswith("MAE 4.520 (4.360-4.690) (<= 4.500, inside the 95% interval): missed"), evidence
    far = {**near, "ci95": {**app["ci95"], "age_mae": [4.51, 4.53]}}
    assert judged(far, model_a_ms)[1][0].endswith("(<= 4.500, outside the 95% interval): missed")
    assert judge_claims(rows, "1", app_int8_sha256=None)[6]["verdict"] == "not measured"
    # Model A's checkpoint gone (its PyTorch row has no figures): its int8 file is still the latency yardstick
    no_reference = [{k: v for k, v in r.items() if k in ("model", "family", "format", "precision", "status")}
                    if r["family"] == "custom_cnn" and r["format"] == "pytorch" else r
                    for r in edited_rows(at_target, model_a_ms)]
    evidence = judge_claims(no_reference, "1", app_int8_sha256=app["sha256"])[6]["evidence"].split("; ")
    assert evidence[5].endswith(": met") and "against model A's" in evidence[5], evidence
    # Timed in turns, the ratio judged is that one, whatever the separate runs said
    in_turns = {"latency_ms_median": 3.0, "reference_latency_ms_median": 2.0, "ratio": 1.5,
                "ratio_per_process": [1.3, 1.45, 1.5, 1.52, 1.9]}
    edited = [at_target if r is app else dict(r, latency={"1": {"latency_ms_median": 1.0}}) if r is model_a else r
              for r in rows]
    claim = judge_claims(edited, "1", app_int8_sha256=app["sha256"], app_in_turns=in_turns)[6]
    separate = app["latency"]["1"]["latency_ms_median"] / 1.0
    assert claim["evidence"].split("; ")[5] == (
        f"3.00 ms at 1 thread against model A's 2.00 ms timed in turns = 1.50x (median of 5 processes, 1.30-1.90x, "
        f"timed apart {separate:.2f}x) (<= 2x): met")


def test_the_apps_file_and_model_a_are_timed_in_turns(pipeline_dirs, tmp_path):
    """With the app's manifest naming a measured int8 file, the benchmark times it in turns with model A's int8 file
    in each of five fresh processes and judges the median ratio; here MA-SFV2's int8 TFLite stands in for the app's
    file."""
    # A sibling of the pipeline's exports, so that the manifests' ../../runs paths still resolve
    exports = pipeline_dirs["exports"].with_name("exports-in-turns")
    for name in ("custom_cnn-quick", "ma_sfv2-quick"):
        shutil.copytree(pipeline_dirs["exports"] / name, exports / name)
        manifest = json.loads((exports / name / "manifest.json").read_text())
        manifest["files"] = [f for f in manifest["files"] if f["format"] == "tflite" and f["precision"] == "int8"]
        (exports / name / "manifest.json").write_text(json.dumps(manifest))
    app_file = next(f for f in json.loads((exports / "ma_sfv2-quick" / "manifest.json").read_text())["files"])
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "manifest.json").write_text(json.dumps({"files": [{"precision": "int8", "sha256": app_file["sha256"]}]}))
    try:
        assert main(["benchmark", "--exports", str(exports), "--threads", "1", "--runs", "30", "--app-assets",
                     str(assets), "--out", str(tmp_path / "r")]) == 0
    finally:
        shutil.rmtree(exports)
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    in_turns = results["context"]["app_int8_against_model_a_in_turns"]
    assert in_turns["rounds"] == 30 and in_turns["calls_per_turn"] == 10 and in_turns["processes"] == 5
    # Each process timed both files in turns; the judged ratio is the median process's
    readings = in_turns["readings"]
    assert len(readings) == 5 and len({r["latency_ms_median"] for r in readings}) > 1  # five separate timings
    for reading in readings:
        assert reading["ratio"] == pytest.approx(reading["latency_ms_median"] / reading["reference_latency_ms_median"])
        assert 0 < reading["ratio_per_round_p10"] <= reading["ratio_per_round_p90"]
    assert in_turns["ratio_per_process"] == sorted(r["ratio"] for r in readings)
    assert in_turns["ratio"] == in_turns["ratio_per_process"][2]
    latency_check = results["claims"][6]["evidence"].split("; ")[5]
    assert f"timed in turns = {in_turns['ratio']:.2f}x" in latency_check, latency_check


def test_timing_in_turns_refuses_a_file_it_cannot_run(pipeline_dirs, capsys):
    from edge_age.benchmark.timing import main as timing_main

    checkpoint = pipeline_dirs["runs"] / "custom_cnn-quick" / "best.pt"
    tflite = pipeline_dirs["exports"] / "custom_cnn-quick" / "custom_cnn_int8.tflite"
    with pytest.raises(SystemExit, match="this timer runs .tflite, .onnx files, not '.pt'"):
        timing_main([str(tflite), "--against", str(checkpoint)])


def test_the_apps_int8_digest_is_read_from_its_manifest(tmp_path):
    from edge_age.export import android

    assets = android.DEFAULT_ASSETS
    int8 = next(f for f in json.loads((assets / "manifest.json").read_text())["files"] if f["precision"] == "int8")
    assert android.shipped_sha256(assets, "int8") == sha256_file(assets / int8["file"])
    assert android.shipped_sha256(tmp_path, "int8") is None  # no app manifest: nothing to judge
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        android.shipped_sha256(tmp_path, "int8")


@pytest.mark.parametrize("flags,message", [
    (["--exports", "/nonexistent/exports"], "no such folder"),
    (["--app-assets", "/nonexistent/assets"], "no manifest.json there"),
    (["--runs", "3"], "--runs must be at least 10"),
    (["--threads", "0"], "--threads takes positive numbers"),
])
def test_bad_benchmark_flags_give_clear_errors(flags, message, pipeline_dirs, capsys):
    args = ["benchmark", "--exports", str(pipeline_dirs["exports"]), *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_no_exports_found_says_what_to_run(tmp_path, capsys):
    assert main(["benchmark", "--exports", str(tmp_path)]) == 2
    assert "edge-age export --run" in capsys.readouterr().err


def test_limit_takes_a_seeded_sample_not_the_youngest_faces(pipeline_dirs, small_faces_dir):
    from edge_age.benchmark.harness import Scoring, find_exports, scored_images

    exported = find_exports(pipeline_dirs["exports"] / "custom_cnn-quick")[0]

    def val_images(limit):
        images, described = scored_images(exported, Scoring(data=str(small_faces_dir), split="val", limit=limit))
        return images

    everything, sample = val_images(None), val_images(5)
    assert len(sample) == 5 and set(sample.data.files) <= set(everything.data.files)
    assert list(sample.data.files) != list(everything.data.files[:5])
    assert np.array_equal(sample.data.files, val_images(5).data.files)


def test_a_measuring_process_runs_exported_files_without_torch(tiny_custom_cnn_export, tmp_path):
    """Its memory figure is the file's, not torch's, and it starts in a fraction of a second: every format module
    imports torch only where it traces a model."""
    import subprocess
    import sys

    np.save(tmp_path / "inputs.npy", np.zeros((2, 3, 32, 32), np.float32))
    for name in ("custom_cnn_int8.tflite", "custom_cnn_fp32.onnx"):
        argv = ["measure", "latency", str(tiny_custom_cnn_export / name), "--inputs", str(tmp_path / "inputs.npy"),
                "--threads", "1", "--runs", "3", "--batch", "2"]
        code = (f"import runpy, sys; sys.argv = {argv!r}\n"
                "try:\n    runpy.run_module('edge_age.benchmark.measure', run_name='__main__')\n"
                "except SystemExit:\n    pass\n"
                "print('torch loaded' if 'torch' in sys.modules else 'no torch')")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        lines = proc.stdout.strip().splitlines()
        assert json.loads(lines[-2])["latency_ms_median"] > 0 and lines[-1] == "no torch", (name, proc.stdout[-500:])
