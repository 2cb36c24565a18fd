"""The mistakes people make, made for real: each gets a clear message, and nothing outside the intended files changes.

Every test builds the bad input itself (a tampered file, a hostile manifest, a folder given as an output file,
an interrupted run) and hashes the folders it must not touch before and after.
"""
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from edge_age.cli import main
from edge_age.data import read_labels_csv
from edge_age.io import sha256_file
from tests.conftest import copy_real_faces

SMALL = ["--batch-size", "8", "--img-size", "32", "--device", "cpu"]


def tree_hash(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its bytes' sha256 (links by target), to compare before and after."""
    state = {}
    for path in sorted(Path(folder).rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            state[key] = "link:" + os.readlink(path)
        elif path.is_file():
            state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[key] = "dir"
    return state


def run_cli(capsys, *args) -> tuple[int, str]:
    """Run the command; argparse's refusals (SystemExit 2) count as an exit code too. Returns (code, stderr)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.fixture
def run_dir(tiny_custom_cnn_run):
    """custom_cnn trained one epoch on 60 real chips (conftest)."""
    return tiny_custom_cnn_run


@pytest.fixture
def export_dir(tiny_custom_cnn_export):
    """Its ONNX and TFLite fp32/int8 files (conftest)."""
    return tiny_custom_cnn_export


def _copy_export(export_dir: Path, dest: Path) -> Path:
    shutil.copytree(export_dir, dest)
    return dest


# ---------------------------------------------------------------- export: never delete what it did not write


def test_reexporting_a_subset_keeps_the_other_variants(run_dir, export_dir, tmp_path, capsys):
    out = _copy_export(export_dir, tmp_path / "export")
    (out / "my-notes.txt").write_text("mine")
    before = tree_hash(out)
    listed_before = {e["file"]: e for e in json.loads((out / "manifest.json").read_text())["files"]}
    code, _ = run_cli(capsys, "export", "--run", run_dir, "--out", out, "--formats", "onnx", "--precisions", "fp32",
                      "--calib-images", "8")
    assert code == 0
    after = tree_hash(out)
    for name in before:  # every file is still there; only the re-exported one and the manifest may change
        assert name in after, name
        if name not in ("custom_cnn_fp32.onnx", "manifest.json"):
            assert after[name] == before[name], name
    listed = {e["file"]: e for e in json.loads((out / "manifest.json").read_text())["files"]}
    assert set(listed) == set(listed_before)
    assert listed["custom_cnn_int8.tflite"] == listed_before["custom_cnn_int8.tflite"]
    assert listed["custom_cnn_fp32.onnx"]["sha256"] == sha256_file(out / "custom_cnn_fp32.onnx")
    assert all(not Path(p).is_absolute() for p in (json.loads((out / "manifest.json").read_text())["source"]["run"],))


@pytest.mark.parametrize("hostile_name", ["", "../outside.txt", "/etc/hostname", "."])
def test_a_hostile_manifest_is_refused_and_nothing_is_deleted(run_dir, export_dir, tmp_path, capsys, hostile_name):
    out = _copy_export(export_dir, tmp_path / "export")
    (tmp_path / "outside.txt").write_text("not yours")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"][0]["file"] = hostile_name
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "my-notes.txt").write_text("mine")
    before = tree_hash(tmp_path)
    code, err = run_cli(capsys, "export", "--run", run_dir, "--out", out, "--formats", "onnx", "--precisions", "fp32",
                        "--calib-images", "8")
    assert code == 2 and err.count("\n") == 1
    assert repr(hostile_name) in err and ("not a file name" in err or "outside its folder" in err)
    assert tree_hash(tmp_path) == before


def test_a_file_no_manifest_lists_is_never_overwritten(run_dir, tmp_path, capsys):
    out = tmp_path / "export"
    out.mkdir()
    (out / "custom_cnn_fp32.onnx").write_bytes(b"someone's own model")
    before = tree_hash(out)
    code, err = run_cli(capsys, "export", "--run", run_dir, "--out", out, "--formats", "onnx", "--precisions", "fp32")
    assert code == 2 and "custom_cnn_fp32.onnx" in err and "left alone" in err
    assert tree_hash(out) == before


def test_another_checkpoints_export_needs_clean_and_clean_removes_only_its_files(run_dir, export_dir, small_faces_dir,
                                                                                  tmp_path, capsys):
    other_run = tmp_path / "other-run"
    assert main(["train", "--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "1", "--seed", "1",
                 "--out", str(other_run), *SMALL]) == 0
    out = _copy_export(export_dir, tmp_path / "export")
    (out / "my-notes.txt").write_text("mine")
    before = tree_hash(out)
    code, err = run_cli(capsys, "export", "--run", other_run, "--out", out, "--formats", "onnx", "--precisions", "fp32",
                        "--calib-images", "8")
    assert code == 2 and "another checkpoint" in err and "--clean" in err
    assert tree_hash(out) == before
    code, _ = run_cli(capsys, "export", "--run", other_run, "--out", out, "--formats", "onnx", "--precisions", "fp32",
                      "--calib-images", "8", "--clean")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["custom_cnn_fp32.onnx", "manifest.json", "my-notes.txt",
                                                     "split.json"]
    assert (out / "my-notes.txt").read_text() == "mine"


def test_files_are_written_with_ordinary_permissions(export_dir):
    for path in export_dir.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o111 == 0 and mode & 0o044 == 0o044, (path.name, oct(mode))


# ---------------------------------------------------------------- verify before use


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_file_is_never_benchmarked_as_pass(export_dir, tmp_path):
    from edge_age.benchmark.harness import _variant_rows, find_exports

    out = _copy_export(export_dir, tmp_path / "export")
    _tamper(out / "custom_cnn_fp32.tflite")
    rows = {(r["format"], r["precision"]): r for r in _variant_rows(find_exports(out)[0])}
    assert rows[("tflite", "fp32")]["status"] == "file changed"
    assert "does not match the sha256" in rows[("tflite", "fp32")]["reason"]
    assert rows[("onnx", "fp32")]["status"] in ("pass", "fail")  # the others are measured as usual
    (out / "custom_cnn_fp32.onnx").write_bytes((out / "custom_cnn_fp32.onnx").read_bytes()[:1000])  # truncated
    rows = {(r["format"], r["precision"]): r for r in _variant_rows(find_exports(out)[0])}
    assert rows[("onnx", "fp32")]["status"] == "file changed" and "truncated" in rows[("onnx", "fp32")]["reason"]


def test_an_export_that_reads_the_age_otherwise_than_its_model_gets_no_pytorch_row(export_dir, tmp_path):
    from edge_age.benchmark.harness import find_exports

    out = _copy_export(export_dir, tmp_path / "export")  # same depth as export_dir: its source path still resolves
    assert find_exports(out)[0].checkpoint is not None
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["age_output"] = "median"  # as an EfficientNet-Lite file reads it, against this custom CNN's plain "age"
    (out / "manifest.json").write_text(json.dumps(manifest))
    exported = find_exports(out)[0]
    assert exported.checkpoint is None
    assert "read the age as 'median'" in exported.checkpoint_problem and "export the run again" in exported.checkpoint_problem


def test_a_tampered_file_is_not_installed_into_the_app(export_dir, tmp_path, capsys):
    out = _copy_export(export_dir, tmp_path / "export")
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["files"]:  # let the tiny model's int8 pass so that only the tampering stops it
        entry["status"] = "pass"
    (out / "manifest.json").write_text(json.dumps(manifest))
    _tamper(out / "custom_cnn_int8.tflite")
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "keep.txt").write_text("app file")
    before = tree_hash(assets)
    code, err = run_cli(capsys, "android", "install", out, "--assets", assets, "--golden", tmp_path / "golden.json",
                        "--precisions", "fp32,int8")
    assert code == 2 and "custom_cnn_int8.tflite does not match the sha256" in err and "nothing was installed" in err
    assert tree_hash(assets) == before and not (tmp_path / "golden.json").exists()


def test_a_tampered_file_is_refused_by_predict_and_evaluate(export_dir, small_faces_dir, tmp_path, capsys):
    out = _copy_export(export_dir, tmp_path / "export")
    _tamper(out / "custom_cnn_fp32.onnx")
    code, err = run_cli(capsys, "predict", small_faces_dir, "--model", out / "custom_cnn_fp32.onnx", "--chip")
    assert code == 2 and "does not match the sha256" in err
    code, err = run_cli(capsys, "evaluate", "--model", out / "custom_cnn_fp32.onnx", "--data", small_faces_dir,
                        "--out", tmp_path / "e.json")
    assert code == 2 and "does not match the sha256" in err and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("content,message", [
    (b"", "corrupt or truncated"),
    (b"PK\x03\x04 not really a zip", "corrupt or truncated"),
])
def test_an_empty_or_foreign_checkpoint_is_one_line(content, message, small_faces_dir, tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    code, err = run_cli(capsys, "predict", small_faces_dir, "--model", bad, "--chip")
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_truncated_checkpoint_is_one_line(run_dir, small_faces_dir, tmp_path, capsys):
    cut = tmp_path / "best.pt"
    cut.write_bytes((run_dir / "best.pt").read_bytes()[:5000])
    code, err = run_cli(capsys, "export", "--checkpoint", cut, "--out", tmp_path / "x", "--data", small_faces_dir)
    assert code == 2 and "corrupt or truncated" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- the Android installer


@pytest.mark.parametrize("hostile_name", ["../victim.txt", "/tmp/../etc/hostname", ""])
def test_android_install_never_removes_what_an_old_manifest_points_outside(export_dir, tmp_path, capsys, hostile_name):
    assets = tmp_path / "assets"
    assets.mkdir()
    (tmp_path / "victim.txt").write_text("precious")
    (assets / "manifest.json").write_text(json.dumps({"format": "edge-age-android/2", "files": [{"file": hostile_name}]}))
    before = tree_hash(tmp_path)
    code, err = run_cli(capsys, "android", "install", export_dir, "--assets", assets, "--golden", tmp_path / "g.json",
                        "--precisions", "fp32")
    assert code == 2 and repr(hostile_name) in err
    assert tree_hash(tmp_path) == before


def test_android_install_with_no_precisions_is_refused(export_dir, tmp_path, capsys):
    code, err = run_cli(capsys, "android", "install", export_dir, "--assets", tmp_path / "a", "--precisions", "")
    assert code == 2 and "at least one" in err and not (tmp_path / "a").exists()


def test_one_broken_asset_is_one_problem_not_a_crash(export_dir, tmp_path, capsys):
    from edge_age.export.android import AssetMismatch, check_assets, install

    assets = tmp_path / "assets"
    install(export_dir, assets, ["fp32"], golden=None)
    (assets / "custom_cnn_fp32.tflite").write_bytes(b"TFL3" + b"\0" * 64)  # a file LiteRT cannot read
    with pytest.raises(AssetMismatch, match="custom_cnn_fp32.tflite: sha256 differs.*LiteRT cannot open it"):
        check_assets(assets)


# ---------------------------------------------------------------- flags checked before the work


@pytest.mark.parametrize("args,message", [
    (["export", "--precisions", ""], "needs at least one"),
    (["export", "--calib-images", "-5"], "positive whole number"),
    (["export", "--formats", "onnx,,"], None),  # empty items are dropped: onnx alone is fine -> needs --run
    (["train", "--lr", "50"], "must be in (0, 1]"),
    (["train", "--lr", "nan"], "must be in (0, 1]"),
    (["train", "--loss", "age_l1"], "expected key=value"),
    (["train", "--loss", "age_l2=1"], "unknown loss term 'age_l2'"),
    (["train", "--loss", "age_l1=-1"], "must be a number >= 0"),
    (["train", "--workers", "-1"], "whole number >= 0"),
    (["benchmark", "--runs", "0"], "positive whole number"),
    (["benchmark", "--limit", "-3"], "positive whole number"),
    (["evaluate", "--model", "m.pt", "--data", ".", "--limit", "0"], "positive whole number"),
])
def test_bad_flags_are_refused_up_front(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, *args)
    assert code == 2
    if message:
        assert message in err
    assert list(tmp_path.iterdir()) == []


def test_an_output_file_that_is_a_folder_is_refused_before_the_batch(export_dir, small_faces_dir, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    model = export_dir / "custom_cnn_fp32.onnx"
    code, err = run_cli(capsys, "predict", small_faces_dir, "--model", model, "--chip", "--csv", folder)
    assert code == 2 and "is a folder" in err
    code, err = run_cli(capsys, "evaluate", "--model", model, "--data", small_faces_dir, "--out", folder)
    assert code == 2 and "is a folder" in err
    code, err = run_cli(capsys, "evaluate", "--model", model, "--data", small_faces_dir, "--out",
                        tmp_path / "missing" / "e.json")
    assert code == 2 and "does not exist" in err
    assert list(folder.iterdir()) == []


def test_resume_applies_epochs_and_refuses_other_changes(small_faces_dir, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "--model", "custom_cnn", "--data", small_faces_dir, "--out", run, *SMALL]
    assert run_cli(capsys, *common, "--epochs", "1")[0] == 0
    (run / "test_metrics.json").unlink()  # as a run killed after its first epoch leaves it
    before = tree_hash(run)
    for flag, value in (("--lr", "0.5"), ("--batch-size", "16"), ("--loss", "age_l1=1")):
        code, err = run_cli(capsys, *common, "--resume", flag, value)
        assert code == 2 and f"{flag} " in err and "differs from the stored" in err
        assert tree_hash(run) == before
    code, err = run_cli(capsys, *common, "--resume", "--epochs", "2")  # the same flags again are not changes
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"]["phases"][0]["epochs"] == 2
    assert config["changed_on_resume"][0]["epochs_before"] == [1] and config["changed_on_resume"][0]["epochs"] == 2
    assert [row.split(",")[0] for row in (run / "metrics.csv").read_text().splitlines()[1:]] == ["1", "2"]


def test_resume_with_more_epochs_reopens_a_finished_run(small_faces_dir, tmp_path, capsys):
    """A finished run trains on with --resume --epochs N (N above what it ran); anything else leaves it as it is."""
    import torch

    from edge_age.checkpoint import load_checkpoint

    run = tmp_path / "run"
    common = ["train", "--model", "custom_cnn", "--data", small_faces_dir, "--out", run, *SMALL]
    assert run_cli(capsys, *common, "--epochs", "1")[0] == 0
    before = tree_hash(run)
    code, err = run_cli(capsys, *common, "--resume")
    assert code == 2 and "already finished" in err and "--epochs N" in err
    code, err = run_cli(capsys, *common, "--resume", "--epochs", "1")
    assert code == 2 and "already ran 1 epochs" in err
    assert tree_hash(run) == before

    code, _ = run_cli(capsys, *common, "--resume", "--epochs", "3")
    assert code == 0
    assert [row.split(",")[0] for row in (run / "metrics.csv").read_text().splitlines()[1:]] == ["1", "2", "3"]
    assert load_checkpoint(run / "last.pt")["global_epoch"] == 3
    assert json.loads((run / "test_metrics.json").read_text())["n"] == 6  # remade at the end
    assert json.loads((run / "config.json").read_text())["changed_on_resume"][-1]["epochs_before"] == [1]

    # a run its early stopping ended is not reopened: its next epoch would stop at once
    last = load_checkpoint(run / "last.pt")
    last["recipe"]["phases"][0]["early_stopping"] = {"patience": 2}
    last["early_stopping"]["bad_epochs"] = 2
    torch.save(last, run / "last.pt")
    before = tree_hash(run)
    code, err = run_cli(capsys, *common, "--resume", "--epochs", "5")
    assert code == 2 and "stopped early" in err
    assert tree_hash(run) == before


def test_predict_writes_csv_rows_as_images_are_done(export_dir, small_faces_dir, tmp_path, capsys, monkeypatch):
    """Interrupted after the third image, the CSV keeps the three rows done."""
    import edge_age.predict as predict

    done = []
    real = predict.analyse_image

    def interrupt_after_three(*args, **kwargs):
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "analyse_image", interrupt_after_three)
    out = tmp_path / "rows.csv"
    code, err = run_cli(capsys, "predict", small_faces_dir, "--model", export_dir / "custom_cnn_fp32.onnx", "--chip",
                        "--csv", out)
    assert code == 130 and "interrupted" in err
    rows = out.read_text().splitlines()
    assert rows[0].startswith("file,status") and len(rows) == 4 and all(",ok," in r for r in rows[1:])


# ---------------------------------------------------------------- honest data


def test_odd_but_valid_csvs_are_read_and_bad_rows_named(utkface_all, tmp_path):
    names = copy_real_faces(utkface_all, tmp_path / "imgs", 4)
    rows = [f'"{names[0]}",30,0', f"{names[1]},41.0,1", f"{names[2]},25.5,0", f"{names[3]},7,2",
            f"{names[0]},31,0", "../escape.jpg,30,1", f'"{names[3]}",12,"1"']
    (tmp_path / "labels.csv").write_bytes(("\ufefffile,age,gender\r\n" + "\r\n".join(rows) + "\r\n").encode())
    with pytest.warns(UserWarning, match="skipped 4 row") as caught:
        data = read_labels_csv(tmp_path / "labels.csv", root=tmp_path / "imgs")
    assert data.files == [names[0], names[1], names[3]] and list(data.ages) == [30, 41, 12]
    message = str(caught[0].message)
    assert "line 4: age '25.5' is not a whole number" in message and "line 5: gender '2'" in message
    assert "line 6:" in message and "listed again" in message and "line 7:" in message and "outside" in message


def test_benchmark_scores_a_labelled_set_of_raw_photos_aligned_by_dlib(export_dir, utkface_all, tmp_path):
    """Any labelled set: photos named freely, a CSV with a BOM, one photo without a face; dlib aligns the rest."""
    from PIL import Image

    from edge_age.benchmark.harness import Scoring, find_exports, scored_images

    photos = tmp_path / "photos"
    names = copy_real_faces(utkface_all, photos, 4, seed=11)
    rows = []
    for number, name in enumerate(names):
        (photos / name).rename(photos / f"person{number}.jpg")
        age, gender = name.split("_")[:2]
        rows.append(f"person{number}.jpg,{age},{gender}")
    Image.new("RGB", (120, 90), (40, 90, 200)).save(photos / "sky.jpg")  # no face in it
    rows.append("sky.jpg,30,1")
    (photos / "labels.csv").write_bytes(("\ufefffile,age,gender\r\n" + "\r\n".join(rows) + "\r\n").encode())
    exported = find_exports(export_dir)[0]
    decoded, described = scored_images(exported, Scoring(data=str(photos), labels=str(photos / "labels.csv"),
                                                         whole_set=True, align=True))
    assert decoded.pixels.shape[1:] == (32, 32, 3) and len(decoded) == len(decoded.data.ages)
    assert "aligned by dlib" in described and f"of {len(rows)} faces found" in described
    assert "sky.jpg" not in decoded.data.files and 3 <= len(decoded) <= 4
