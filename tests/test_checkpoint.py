"""Shrunk checkpoints (``edge-age shrink-checkpoint``): a published run's best.pt in fp16 or int8 weights must read
real faces like the original, and load through the same code as any checkpoint; bad copies are clear errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_age.checkpoint import load_checkpoint, load_model, shrink_checkpoint
from edge_age.cli import main
from edge_age.images import load_for_model
from edge_age.inference import predict
from edge_age.manifest import read_manifest

PHONE_V2 = Path(__file__).parents[1] / "results/runs-cpu-2026-12-04/efficientnet_lite0-phone-v2/best.pt"


def test_the_phone_model_in_int8_and_fp16_weights_reads_real_faces_like_the_original(small_faces_dir, tmp_path):
    faces = np.stack([load_for_model(path, 128) for path in sorted(small_faces_dir.glob("*.jpg"))])
    original = predict(load_model(PHONE_V2)[0], faces)
    assert np.ptp(original["age"]) > 30  # a trained model on varied faces, so a broken copy cannot agree by chance
    for storage, size_ratio, mean_years, max_years in (("int8", 0.3, 0.25, 1.5), ("fp16", 0.55, 0.03, 0.25)):
        copy = tmp_path / f"best-{storage}.pt"
        before, after = shrink_checkpoint(PHONE_V2, copy, storage)
        assert before == PHONE_V2.stat().st_size and after == copy.stat().st_size < size_ratio * before
        shrunk = predict(load_model(copy)[0], faces)
        difference = np.abs(shrunk["age"] - original["age"])
        assert difference.mean() < mean_years and difference.max() < max_years, storage
        assert ((shrunk["gender_prob"] > 0.5) != (original["gender_prob"] > 0.5)).sum() <= 1, storage


def test_each_int8_weight_is_within_half_a_step_of_the_original(tiny_custom_cnn_run, tmp_path):
    original = load_checkpoint(tiny_custom_cnn_run / "best.pt")["state_dict"]
    shrink_checkpoint(tiny_custom_cnn_run / "best.pt", tmp_path / "int8.pt", "int8")
    stored = torch.load(tmp_path / "int8.pt", weights_only=True)
    loaded = load_checkpoint(tmp_path / "int8.pt")["state_dict"]
    assert stored["weight_scales"] and set(loaded) == set(original)
    for name, scale in stored["weight_scales"].items():
        assert stored["state_dict"][name].dtype == torch.int8
        step = scale.view((-1,) + (1,) * (original[name].dim() - 1))
        assert loaded[name].dtype == torch.float32
        assert torch.all((loaded[name] - original[name]).abs() <= step / 2 + 1e-7), name


def test_a_run_whose_best_pt_is_shrunk_exports_and_benchmarks(tiny_custom_cnn_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_custom_cnn_run, run)
    (run / "best.pt").unlink()
    shrink_checkpoint(tiny_custom_cnn_run / "best.pt", run / "best.pt", "int8")
    assert main(["export", "--run", str(run), "--out", str(tmp_path / "export"), "--formats", "tflite",
                 "--precisions", "fp32"]) == 0
    assert [entry.status for entry in read_manifest(tmp_path / "export").files] == ["pass"]
    assert main(["benchmark", "--exports", str(tmp_path / "export"), "--threads", "1", "--runs", "10",
                 "--out", str(tmp_path / "report")]) in (0, 1)  # 1: a claim does not hold for a one-epoch model
    rows = json.loads((tmp_path / "report/results.json").read_text())["rows"]
    reference = next(row for row in rows if row["format"] == "pytorch")
    assert reference["status"] == "reference" and reference["age_mae"] > 0 and reference["size_mb"] == (run / "best.pt").stat().st_size / 1e6
    assert "weights stored in int8" in reference["note"]
    assert "weights stored in int8" in (tmp_path / "report/report.md").read_text()


def test_shrinking_refuses_resume_checkpoints_existing_files_and_shrunk_copies(tiny_custom_cnn_run, tmp_path, capsys):
    best = tiny_custom_cnn_run / "best.pt"
    with pytest.raises(ValueError, match="resume checkpoint"):
        shrink_checkpoint(tiny_custom_cnn_run / "last.pt", tmp_path / "a.pt", "int8")
    taken = tmp_path / "taken.pt"
    taken.write_bytes(b"mine")
    assert main(["shrink-checkpoint", str(best), "--out", str(taken)]) == 2
    assert "exists" in capsys.readouterr().err and taken.read_bytes() == b"mine"
    shrink_checkpoint(best, tmp_path / "once.pt", "fp16")
    with pytest.raises(ValueError, match="already stored in fp16"):
        shrink_checkpoint(tmp_path / "once.pt", tmp_path / "twice.pt", "int8")
    assert main(["shrink-checkpoint", str(best), "--out", str(tmp_path / "ok.pt"), "--storage", "int8"]) == 0
    assert "MB (int8 weights)" in capsys.readouterr().out


@pytest.mark.parametrize("damage, message", [
    (lambda p: p["weight_scales"].update({k: v[:-1] for k, v in p["weight_scales"].items()}), "do not fit"),
    (lambda p: p["weight_scales"].update({k: "0.1" for k in p["weight_scales"]}), "do not fit"),
    (lambda p: p["weight_scales"].clear(), "has no scales"),
    (lambda p: p.update(weight_storage="int4"), "unknown weight storage"),
])
def test_a_damaged_shrunk_checkpoint_is_a_clear_error(tiny_custom_cnn_run, small_faces_dir, tmp_path, damage, message,
                                                      capsys):
    shrink_checkpoint(tiny_custom_cnn_run / "best.pt", tmp_path / "int8.pt", "int8")
    payload = torch.load(tmp_path / "int8.pt", weights_only=True)
    damage(payload)
    torch.save(payload, tmp_path / "damaged.pt")
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / "damaged.pt")
    assert main(["evaluate", "--model", str(tmp_path / "damaged.pt"), "--data", str(small_faces_dir),
                 "--out", str(tmp_path / "eval.json")]) == 2
    assert message in capsys.readouterr().err
