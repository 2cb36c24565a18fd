"""Runs that use finished runs, on real chips: distillation (train/distill.py), --init (a run that starts from
another's weights) and --split. A tampered, leaking, headless or ill-fitting source run is refused with a clear line."""
import csv
import json
import shutil

import pytest
import torch

from edge_age.checkpoint import load_model
from edge_age.cli import main
from edge_age.registry import create_model
from edge_age.train.distill import load_teachers
from edge_age.train.engine import RunOptions, _start_from_run, compute_loss, gaussian_age_targets
from edge_age.train.source_run import describe_source_run

TINY = ["--model", "ma_sfv2", "--width", "0.5", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
TINY_CNN = ["--model", "custom_cnn", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
STUDENT_LOSS = ["--loss", "age_ldl=1,age_l1=0.1,gender_bce=1"]


def _train_loss(run_dir) -> float:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return float(next(csv.DictReader(handle))["train_loss"])


@pytest.fixture(scope="module")
def teacher_run(small_faces_dir, tmp_path_factory):
    """A tiny MA-SFV2 (101-bin age head) trained one epoch at 64 px on the 60 real chips."""
    run = tmp_path_factory.mktemp("teacher") / "run"
    assert main(["train", *TINY, "--img-size", "64", "--data", str(small_faces_dir), "--out", str(run)]) == 0
    return run


def test_soft_targets_mix_into_the_age_and_gender_targets():
    ages = torch.tensor([3.0, 30.0, 71.0])
    genders = torch.tensor([0.0, 1.0, 1.0])
    out = {"age_logits": torch.randn(3, 101), "gender_logit": torch.randn(3)}
    weights = {"age_ldl": 1.0, "gender_bce": 1.0}
    plain = compute_loss(out, ages, genders, weights, model=None)
    # a teacher that says exactly what the labels say changes nothing, whatever its weight
    agreeing = {"age_probs": gaussian_age_targets(ages, 2.0), "gender_prob": genders, "weight": 0.7}
    assert torch.allclose(compute_loss(out, ages, genders, weights, None, teacher=agreeing), plain)
    # weight 1: the targets are the teacher's alone
    one_hot = torch.zeros(3, 101)
    one_hot[:, 50] = 1
    only_teacher = {"age_probs": one_hot, "gender_prob": torch.full((3,), 0.5), "weight": 1.0}
    expected = (-torch.log_softmax(out["age_logits"], 1)[:, 50].mean()
                + torch.nn.functional.binary_cross_entropy_with_logits(out["gender_logit"], torch.full((3,), 0.5)))
    assert torch.allclose(compute_loss(out, ages, genders, weights, None, teacher=only_teacher), expected)


def test_student_learns_from_teachers_of_another_size_on_their_split(teacher_run, small_faces_dir, tmp_path):
    common = [*TINY, *STUDENT_LOSS, "--img-size", "32", "--data", str(small_faces_dir), "--seed", "5",
              "--split", str(teacher_run / "split.json")]
    assert main(["train", *common, "--out", str(tmp_path / "alone")]) == 0
    assert main(["train", *common, "--teacher", str(teacher_run), "--teacher", str(teacher_run),
                 "--distill-weight", "0.8", "--out", str(tmp_path / "student")]) == 0
    student = tmp_path / "student"
    config = json.loads((student / "config.json").read_text())
    distill = config["recipe"]["distill"]
    assert distill["weight"] == 0.8 and [t["checkpoint"] for t in distill["teachers"]] == [str(teacher_run / "best.pt")] * 2
    assert config["seed"] == 5 and (student / "split.json").read_bytes() == (teacher_run / "split.json").read_bytes()
    assert (student / "test_metrics.json").is_file()
    # same seed, split and batches: only the teachers' targets differ
    assert _train_loss(student) != pytest.approx(_train_loss(tmp_path / "alone"), abs=1e-4)


def test_a_resumed_student_refuses_a_teacher_file_that_changed(teacher_run, tmp_path):
    changed = tmp_path / "teacher"
    shutil.copytree(teacher_run, changed)
    recorded = {"teachers": [{"checkpoint": str(changed / "best.pt"),
                              "sha256": "0" * 64}], "weight": 0.5}
    split = json.loads((changed / "split.json").read_text())
    with pytest.raises(ValueError, match="different or damaged file"):
        load_teachers(recorded, {"age_ldl": 1.0}, split, torch.device("cpu"))
    with pytest.raises(ValueError, match="no age_ldl term"):
        load_teachers(recorded, {"age_l1": 1.0}, split, torch.device("cpu"))


@pytest.mark.parametrize("case,message", [
    ("other split", "trained on"),
    ("no split.json", "no split.json beside it"),
    ("no age bins", "no 101-bin age head"),
    ("weight alone", "--distill-weight needs --teacher"),
    ("not a run", "no best.pt there"),
])
def test_bad_teachers_are_refused_in_one_line(case, message, teacher_run, tiny_custom_cnn_run, small_faces_dir,
                                              tmp_path, capsys):
    teacher = teacher_run
    if case == "no split.json":
        teacher = tmp_path / "bare"
        shutil.copytree(teacher_run, teacher)
        (teacher / "split.json").unlink()
    elif case == "no age bins":
        teacher = tiny_custom_cnn_run  # regression age output: no distribution to learn from
    elif case == "not a run":
        teacher = tmp_path
    # "other split": the student's --seed draws another split, whose val/test faces the teacher trained on
    args = ["train", *TINY, *STUDENT_LOSS, "--img-size", "32", "--data", str(small_faces_dir), "--seed", "9",
            "--out", str(tmp_path / "student")]
    if case != "other split":
        args += ["--split", str(teacher_run / "split.json")]
    args += ["--distill-weight", "0.5"] if case == "weight alone" else ["--teacher", str(teacher)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_split_flag_refuses_a_split_of_other_faces(teacher_run, tmp_path, utkface_all, capsys):
    from tests.conftest import copy_real_faces

    other = tmp_path / "other_faces"
    copy_real_faces(utkface_all, other, 20, seed=3)
    assert main(["train", *TINY, "--img-size", "32", "--data", str(other), "--split", str(teacher_run / "split.json"),
                 "--out", str(tmp_path / "run")]) == 2
    assert "of the train split are not in" in capsys.readouterr().err


def test_init_starts_from_the_source_runs_weights(teacher_run, small_faces_dir, tmp_path, capsys):
    split = json.loads((teacher_run / "split.json").read_text())
    source, _ = load_model(teacher_run / "best.pt")
    model = create_model("ma_sfv2", img_size=64, width=0.5)
    _start_from_run(model, describe_source_run(str(teacher_run), "--init"), split, RunOptions(out_dir=tmp_path))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in source.state_dict().items())

    run = tmp_path / "fine-tuned"
    common = [*TINY, "--img-size", "64", "--data", str(small_faces_dir), "--out", str(run)]
    assert main(["train", *common, "--init", str(teacher_run), "--split", str(teacher_run / "split.json")]) == 0
    init = json.loads((run / "config.json").read_text())["recipe"]["init"]
    assert init == {"checkpoint": str(teacher_run / "best.pt"), "sha256": describe_source_run(str(teacher_run), "x")["sha256"]}
    capsys.readouterr()
    assert main(["train", "--resume", "--init", str(teacher_run), "--out", str(run)]) == 2
    assert "--init means nothing on --resume (the run keeps its own weights, in last.pt)" in capsys.readouterr().err


def test_init_fine_tunes_at_another_size_where_the_weights_allow_it(teacher_run, small_faces_dir, tmp_path, capsys):
    """MA-SFV2 (convolutions and a global pool) trained at 64 px starts a 96 px run with the same weights; the
    custom CNN, whose dense layer is shaped for its input size, is refused with the size to give."""
    split = json.loads((teacher_run / "split.json").read_text())
    source, _ = load_model(teacher_run / "best.pt")
    larger = create_model("ma_sfv2", img_size=96, width=0.5)
    _start_from_run(larger, describe_source_run(str(teacher_run), "--init"), split, RunOptions(out_dir=tmp_path))
    assert all(torch.equal(larger.state_dict()[name], value) for name, value in source.state_dict().items())
    assert "trained at 64 px, fine-tuned here at 96 px" in capsys.readouterr().out

    cnn = tmp_path / "cnn"
    cnn_args = [*TINY_CNN, "--data", str(small_faces_dir), "--split", str(teacher_run / "split.json")]
    assert main(["train", *cnn_args, "--img-size", "32", "--out", str(cnn)]) == 0
    capsys.readouterr()
    assert main(["train", *cnn_args, "--img-size", "64", "--init", str(cnn), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "weights depend on its input size and were trained at 32 px, not 64: give --img-size 32" in err, err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("case,message", [
    ("other model", "give the same --model"),
    ("other split", "trained on"),
    ("with backbone weights", "drop one"),
    ("not a run", "no best.pt there"),
])
def test_bad_starting_points_are_refused_in_one_line(case, message, teacher_run, small_faces_dir, tmp_path, capsys):
    base = TINY_CNN if case == "other model" else TINY
    args = ["train", *base, "--img-size", "64", "--data", str(small_faces_dir), "--out", str(tmp_path / "run"),
            "--init", str(tmp_path if case == "not a run" else teacher_run)]
    if case != "other split":  # else the default seed draws the same split: --seed 9 draws another
        args += ["--split", str(teacher_run / "split.json")]
    else:
        args += ["--seed", "9"]
    if case == "with backbone weights":
        args += ["--backbone-weights", str(teacher_run / "best.pt")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
