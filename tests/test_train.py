"""Short real trainings on real UTKFace chips: the run folder, resume after SIGKILL, torchrun, bad flags."""
import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from edge_age.checkpoint import load_checkpoint
from edge_age.cli import main
from edge_age.train.engine import RUN_FILES

SMALL = ["--batch-size", "8", "--img-size", "32", "--device", "cpu"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _train(args):
    return main(["train", *args])


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("model,extra", [
    ("custom_cnn", []),
    ("vgg16_transfer", ["--subset", "60"]),  # its quick recipe draws the coursework's 5,000-image subset
    ("ma_sfv2", ["--width", "0.5"]),
    ("efficientnet_lite0", []),  # from the ImageNet weights the pip package ships
])
def test_short_real_training_writes_the_whole_run_folder(model, extra, small_faces_dir, tmp_path):
    run_dir = tmp_path / model
    assert _train(["--model", model, "--data", str(small_faces_dir), "--epochs", "2", "--out", str(run_dir),
                   *SMALL, *extra]) == 0
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(RUN_FILES)
    rows = _rows(run_dir)
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[0]["images_per_s"]) > 0
    test = json.loads((run_dir / "test_metrics.json").read_text())
    assert test["n"] == 6 and 0 <= test["gender_accuracy"] <= 1 and len(test["cs"]) == 11
    assert all(low <= test[metric] <= high for metric, (low, high) in test["ci95"].items())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"]["model"] == model and len(config["split_sha256"]) == 64
    best = load_checkpoint(run_dir / "best.pt")
    assert best["model"]["name"] == model and best["model"]["input_spec"]["size"] == 32
    assert (run_dir / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_two_phase_vgg_recipe_with_local_imagenet_file(small_faces_dir, tmp_path, capsys):
    from edge_age import create_model

    weights = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in create_model("vgg16_transfer").features.state_dict().items()}, weights)
    run_dir = tmp_path / "b"
    assert _train(["--recipe", "coursework-b", "--data", str(small_faces_dir), "--epochs", "1", "--out", str(run_dir),
                   "--backbone-weights", str(weights), *SMALL]) == 0
    rows = _rows(run_dir)
    assert [r["phase"] for r in rows] == ["frozen-base", "finetune-last10"]
    assert [r["lr"] for r in rows] == ["0.001", "0.0001"]
    printed = capsys.readouterr().out
    assert "loaded vgg16_transfer's pretrained weights" in printed
    # each epoch line says what is left of the whole run, later phases included; the last says nothing
    epoch_lines = [line for line in printed.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and re.search(r"; 1 epoch\(s\) left, about \d+ min at this pace$", epoch_lines[0])
    assert "left" not in epoch_lines[1]


def test_overrides_are_recorded_and_finished_runs_are_not_overwritten(small_faces_dir, tmp_path, capsys):
    run_dir = tmp_path / "c"
    args = ["--model", "ma_sfv2", "--data", str(small_faces_dir), "--epochs", "1", "--out", str(run_dir), "--width", "0.5",
            "--lr", "0.0005", "--loss", "age_l1=1,gender_bce=0.5", "--model-options", "attention=false", *SMALL]
    assert _train(args) == 0
    recipe = json.loads((run_dir / "config.json").read_text())["recipe"]
    assert recipe["overrides"] == {"batch_size": 8, "img_size": 32, "epochs": 1, "lr": 0.0005, "width": 0.5,
                                   "model_options": {"attention": False}, "loss": {"age_l1": 1, "gender_bce": 0.5}}
    assert recipe["phases"][0]["lr"] == 0.0005 and recipe["model_options"] == {"width": 0.5, "attention": False}
    assert _train(args) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert _train([*args, "--force"]) == 0


def test_no_test_keeps_the_test_split_unscored_until_a_resume(small_faces_dir, tmp_path, capsys):
    run_dir = tmp_path / "blind"
    common = ["--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "2", "--out", str(run_dir), *SMALL]
    assert _train([*common, "--no-test"]) == 0
    assert (run_dir / "best.pt").is_file() and not (run_dir / "test_metrics.json").exists()
    printed = capsys.readouterr().out
    assert "test split is not scored (--no-test)" in printed and "test (" not in printed
    assert _train(common) == 2  # not overwritten, and the message says how to finish it
    assert "a trained run whose test split is not scored yet (score it with --resume)" in capsys.readouterr().err
    assert _train([*common, "--resume", "--no-test"]) == 2
    assert "nothing to do" in capsys.readouterr().err
    best_before = (run_dir / "best.pt").read_bytes()
    assert _train([*common, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^test \(6 images, best epoch [12]\)", printed, re.M) and "\nphase " not in printed
    test = json.loads((run_dir / "test_metrics.json").read_text())
    assert test["n"] == 6 and [r["epoch"] for r in _rows(run_dir)] == ["1", "2"]  # scored, not trained on
    assert (run_dir / "best.pt").read_bytes() == best_before


def test_a_resumed_blind_run_finishes_its_epochs_blind(small_faces_dir, tmp_path, capsys):
    """Resuming an unfinished --no-test run (killed, or given more epochs) without repeating --no-test trains it
    to the end unscored; only a resume of the trained run scores its test split."""
    run_dir = tmp_path / "blind"
    common = ["--model", "custom_cnn", "--data", str(small_faces_dir), "--out", str(run_dir), *SMALL]
    assert _train([*common, "--epochs", "1", "--no-test"]) == 0
    capsys.readouterr()
    assert _train([*common, "--resume", "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "started with --no-test and has epochs left" in printed and "test (" not in printed
    assert [r["epoch"] for r in _rows(run_dir)] == ["1", "2"] and not (run_dir / "test_metrics.json").exists()
    assert _train([*common, "--resume"]) == 0
    assert re.search(r"^test \(6 images, best epoch [12]\)", capsys.readouterr().out, re.M)
    assert json.loads((run_dir / "config.json").read_text())["no_test"] is True


def test_mixup_blends_faces_and_labels_by_one_weight(small_faces_dir):
    from edge_age.images import load_for_model
    from edge_age.train.engine import compute_loss, gaussian_age_targets, mix_batch

    paths = sorted(small_faces_dir.glob("*.jpg"))[:8]
    x = torch.stack([torch.from_numpy(load_for_model(p, 64).copy()).permute(2, 0, 1).float() / 255 for p in paths])
    ages, genders = torch.arange(8, dtype=torch.float32) * 10, torch.tensor([0.0, 1.0] * 4)
    torch.manual_seed(3)
    mixed, partner_ages, partner_genders, weight = mix_batch(x, ages, genders, alpha=0.4)
    assert 0.5 <= weight <= 1 and sorted(partner_ages.tolist()) == ages.tolist()
    partner = [ages.tolist().index(a) for a in partner_ages.tolist()]
    assert torch.allclose(mixed, weight * x + (1 - weight) * x[partner], atol=1e-6)
    assert partner_genders.tolist() == genders[partner].tolist()
    # the two cross-entropies are linear in their targets: the mixed loss is the loss against blended targets
    out = {"age_logits": torch.randn(8, 101), "gender_logit": torch.randn(8)}
    weights = {"age_ldl": 1.0, "gender_bce": 1.0}
    mixed_loss = (weight * compute_loss(out, ages, genders, weights, None)
                  + (1 - weight) * compute_loss(out, partner_ages, partner_genders, weights, None))
    blended = weight * gaussian_age_targets(ages, 2.0) + (1 - weight) * gaussian_age_targets(partner_ages, 2.0)
    blended_gender = weight * genders + (1 - weight) * partner_genders
    expected = (-(blended * torch.log_softmax(out["age_logits"], 1)).sum(1).mean()
                + torch.nn.functional.binary_cross_entropy_with_logits(out["gender_logit"], blended_gender))
    assert torch.allclose(mixed_loss, expected, atol=1e-5)


def test_mixup_run_records_its_alpha_and_resume_keeps_it(small_faces_dir, tmp_path, capsys):
    run_dir = tmp_path / "mixup"
    common = ["--model", "efficientnet_lite0", "--data", str(small_faces_dir), "--out", str(run_dir), *SMALL]
    assert _train([*common, "--epochs", "1", "--mixup", "0.2"]) == 0
    recipe = json.loads((run_dir / "config.json").read_text())["recipe"]
    assert recipe["mixup"] == 0.2 and recipe["overrides"]["mixup"] == 0.2
    assert _train([*common, "--resume", "--epochs", "2", "--mixup", "0.4"]) == 2
    assert "--mixup 0.4 differs from the stored 0.2" in capsys.readouterr().err
    assert _train([*common, "--resume", "--epochs", "2"]) == 0
    assert [r["epoch"] for r in _rows(run_dir)] == ["1", "2"] and float(_rows(run_dir)[1]["train_loss"]) > 0


def test_kill_and_resume_continues_epochs_optimizer_and_metrics(small_faces_dir, tmp_path):
    common = ["--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "6", *SMALL]
    reference = tmp_path / "reference"
    assert _train([*common, "--out", str(reference)]) == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edge_age.cli", "train", *common, "--out", str(killed)],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (killed / "last.pt").exists() and len(_rows(killed)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = load_checkpoint(killed / "last.pt")["global_epoch"]
    assert 1 <= done_before < 6 and not (killed / "test_metrics.json").exists()

    assert _train([*common, "--out", str(killed)]) == 2  # neither overwritten nor silently restarted
    assert _train([*common, "--out", str(killed), "--resume"]) == 0
    last = load_checkpoint(killed / "last.pt")
    assert last["global_epoch"] == 6
    steps = {int(s["step"]) for s in last["optimizer"]["state"].values()}
    assert steps == {6 * (42 // 8)}  # Adam's step count continued across the kill
    rows, ref_rows = _rows(killed), _rows(reference)
    assert [r["epoch"] for r in rows] == [str(e) for e in range(1, 7)]
    for row, ref in zip(rows, ref_rows):  # the resumed run follows the uninterrupted one
        assert float(row["val_loss"]) == pytest.approx(float(ref["val_loss"]), rel=1e-3)


def test_corrupt_last_checkpoint_is_a_clear_error(small_faces_dir, tmp_path, capsys):
    run_dir = tmp_path / "r"
    common = ["--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "1", "--out", str(run_dir), *SMALL]
    assert _train(common) == 0
    (run_dir / "test_metrics.json").unlink()
    data = (run_dir / "last.pt").read_bytes()
    (run_dir / "last.pt").write_bytes(data[: len(data) // 2])
    assert _train([*common, "--resume"]) == 2
    assert "last.pt is corrupt or truncated" in capsys.readouterr().err


def test_diverging_loss_stops_with_a_message(small_faces_dir, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    with pytest.raises(SystemExit) as refused:  # an absurd learning rate is refused before any work
        _train(["--model", "custom_cnn", "--data", str(small_faces_dir), "--lr", "1e30", "--out", str(run_dir), *SMALL])
    assert refused.value.code == 2 and "must be in (0, 1]" in capsys.readouterr().err
    assert not run_dir.exists()
    # a loss weight that overflows float32 makes the loss infinite on the first step
    assert _train(["--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "3", "--loss",
                   "age_l1=1e38,gender_bce=1", "--out", str(run_dir), *SMALL]) == 2
    assert "the loss became inf" in capsys.readouterr().err
    assert not (run_dir / "test_metrics.json").exists()


@pytest.mark.parametrize("flags,message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--model", "custom_cnn", "--recipe", "fast"], "unknown recipe 'fast'"),
    (["--model", "custom_cnn", "--recipe", "paper-c"], "recipe 'paper-c' trains ma_sfv2"),
    (["--model", "custom_cnn", "--device", "cuda"], "no CUDA GPU"),
    (["--model", "custom_cnn", "--data", "/nonexistent/faces"], "no face data at /nonexistent/faces"),
])
def test_bad_flags_give_one_clear_line(flags, message, tmp_path, capsys):
    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert _train([*flags, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_subset_all_switches_off_the_recipes_subset(capsys):
    from edge_age.train.cli import add_arguments, recipe_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert recipe_from_args(parser.parse_args(["--model", "vgg16_transfer"]))["subset"] == 5000
    recipe = recipe_from_args(parser.parse_args(["--model", "vgg16_transfer", "--subset", "all"]))
    assert recipe["subset"] is None and recipe["overrides"] == {"subset": "all"}
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "vgg16_transfer", "--subset", "some"])
    assert "takes a positive whole number or 'all', got 'some'" in capsys.readouterr().err
    # with --split the split file decides which faces: the recipe's subset is not recorded as if it were used
    assert recipe_from_args(parser.parse_args(["--model", "vgg16_transfer", "--split", "s.json"]))["subset"] is None
    with pytest.raises(ValueError, match="drop --subset"):
        recipe_from_args(parser.parse_args(["--model", "vgg16_transfer", "--split", "s.json", "--subset", "60"]))


def test_batch_size_zero_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _train(["--model", "custom_cnn", "--batch-size", "0"])
    assert exit_info.value.code == 2 and "must be a positive whole number" in capsys.readouterr().err


def test_torchrun_two_processes_end_with_identical_weights(small_faces_dir, tmp_path):
    run_dir = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "-m", "edge_age.cli", "train", "--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "2",
         "--out", str(run_dir), "--batch-size", "4", "--img-size", "32", "--device", "cpu"],
        env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "all 2 processes hold identical weights" in result.stdout
    assert json.loads((run_dir / "config.json").read_text())["world_size"] == 2
    assert len(_rows(run_dir)) == 2
