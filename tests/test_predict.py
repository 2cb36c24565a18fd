"""``edge-age predict`` and ``evaluate`` on real UTKFace chips and photos made from them, every bad input included."""
import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from edge_age.cli import main
from edge_age.io import sha256_file
from tests.conftest import copy_real_faces


@pytest.fixture
def model_files(tiny_custom_cnn_run, tiny_custom_cnn_export):
    """custom_cnn trained one epoch on 60 real chips, as a checkpoint and as fp32 .onnx and .tflite files (conftest)."""
    return {"pt": tiny_custom_cnn_run / "best.pt", "onnx": tiny_custom_cnn_export / "custom_cnn_fp32.onnx",
            "tflite": tiny_custom_cnn_export / "custom_cnn_fp32.tflite"}


@pytest.fixture(scope="module")
def chips_dir(utkface_all, tmp_path_factory):
    folder = tmp_path_factory.mktemp("chips12")
    copy_real_faces(utkface_all, folder, 12, seed=5)
    return folder


def _predict_json(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["predict", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_model_file_kind_gives_the_same_answers(model_files, chips_dir, capsys):
    answers = {}
    for kind, path in model_files.items():
        results = _predict_json(capsys, chips_dir, "--model", path, "--chip")["results"]
        answers[kind] = np.array([[r["faces"][0]["age"], r["faces"][0]["p_female"]] for r in results])
    assert len(answers["pt"]) == 12
    assert np.abs(answers["onnx"] - answers["pt"]).max() < 0.02
    assert np.abs(answers["tflite"] - answers["pt"]).max() < 0.02
    assert answers["pt"][:, 0].std() > 0  # the answers depend on the face


def _bad_inputs_folder(chips_dir, folder):
    """One real face saved every awkward way a user's folder can hold it, plus files that are not faces at all."""
    folder.mkdir()
    face = Image.open(next(iter(sorted(chips_dir.iterdir())))).convert("RGB")
    face.save(folder / "plain.jpg")
    face.convert("L").save(folder / "grayscale.png")
    face.convert("RGBA").save(folder / "rgba.png")
    face.convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png")
    face.convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray((np.asarray(face.convert("L"), np.uint16) * 257)).save(folder / "sixteen_bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    face.rotate(90, expand=True).save(folder / "exif_rotated.jpg", exif=exif)
    large = Image.new("RGB", (8000, 6000), (120, 120, 120))
    large.paste(face.resize((1600, 1600)), (3000, 2000))
    large.save(folder / "very_large.jpg", quality=80)
    face.resize((20, 20)).save(folder / "very_small.jpg")
    (folder / "truncated.jpg").write_bytes((folder / "plain.jpg").read_bytes()[:3000])
    (folder / "not_an_image.jpg").write_text("this is a text file with a .jpg name\n")
    Image.new("RGB", (300, 300), (128, 128, 128)).save(folder / "no_face.jpg")
    group = Image.new("RGB", (780, 300), (200, 200, 200))
    for slot in range(3):
        group.paste(face, (30 + 260 * slot, 50))
    group.save(folder / "three_faces.jpg")
    (folder / "notes.csv").write_text("not an image, not listed\n")


def test_a_folder_of_bad_inputs_gets_a_status_per_file_and_never_stops(model_files, chips_dir, tmp_path, capsys):
    folder = tmp_path / "odd"
    _bad_inputs_folder(chips_dir, folder)
    out = _predict_json(capsys, folder, "--model", model_files["tflite"], "--csv", tmp_path / "faces.csv",
                        "--save-annotated", tmp_path / "annotated")
    by_name = {r["file"].split("/")[-1]: r for r in out["results"]}
    assert "notes.csv" not in by_name and len(by_name) == 13
    for name in ("plain.jpg", "grayscale.png", "rgba.png", "palette.png", "cmyk.jpg", "sixteen_bit.png",
                 "exif_rotated.jpg", "very_large.jpg"):
        assert by_name[name]["status"] == "ok" and len(by_name[name]["faces"]) == 1, (name, by_name[name])
    assert len(by_name["three_faces.jpg"]["faces"]) == 3
    for name in ("very_small.jpg", "no_face.jpg"):
        assert by_name[name]["status"] == "no face" and by_name[name]["faces"] == []
    assert by_name["truncated.jpg"]["status"].startswith("unreadable: not a readable image")
    assert by_name["not_an_image.jpg"]["status"].startswith("unreadable: not a readable image")
    # The EXIF-rotated copy is read upright: the same face, so the same box as the plain file.
    assert np.abs(np.subtract(by_name["exif_rotated.jpg"]["faces"][0]["box"], by_name["plain.jpg"]["faces"][0]["box"])).max() <= 8
    rows = list(csv.DictReader(io.StringIO((tmp_path / "faces.csv").read_text())))
    assert len(rows) == 8 + 3 + 4  # a row per face (8 single faces, 3 in the group), one per faceless file
    annotated = sorted(p.name for p in (tmp_path / "annotated").iterdir())
    assert "three_faces.annotated.jpg" in annotated and "not_an_image.annotated.jpg" not in annotated
    drawn = np.asarray(Image.open(tmp_path / "annotated" / "plain.annotated.jpg"), np.int16)
    assert np.abs(drawn - np.asarray(Image.open(folder / "plain.jpg"), np.int16)).max() > 100  # boxes were drawn


@pytest.mark.parametrize("content, suffix, message", [
    (b"", ".tflite", "LiteRT cannot load it"),
    ("truncate", ".tflite", "LiteRT cannot load it"),
    ("truncate", ".onnx", "onnxruntime cannot load it"),
    (b"not a checkpoint", ".pt", "corrupt or truncated"),
    (b"{}", ".h5", "unknown model file type '.h5'"),
])
def test_a_wrong_or_truncated_model_file_is_a_clear_error(model_files, chips_dir, tmp_path, capsys, content, suffix, message):
    bad = tmp_path / f"model{suffix}"
    if content == "truncate":
        whole = model_files[suffix.lstrip(".")].read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    assert main(["predict", str(chips_dir), "--model", str(bad)]) == 2
    assert message in capsys.readouterr().err


def test_a_model_file_without_metadata_or_manifest_is_refused(model_files, chips_dir, tmp_path, capsys):
    import onnx

    proto = onnx.load(str(model_files["onnx"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    assert main(["predict", str(chips_dir), "--model", str(tmp_path / "bare.onnx")]) == 2
    assert "carries no edge-age metadata" in capsys.readouterr().err
    shutil.copy(model_files["onnx"].parent / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(tmp_path / "bare.onnx", tmp_path / "custom_cnn_fp32.onnx")
    # a manifest describes other bytes than the file's: refused, never used
    assert main(["predict", str(chips_dir), "--model", str(tmp_path / "custom_cnn_fp32.onnx"), "--chip"]) == 2
    assert "changed" in capsys.readouterr().err  # its size or sha256 differs from the entry
    # a manifest that describes this very file can stand in for the missing metadata
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e["file"] == "custom_cnn_fp32.onnx")
    entry.update(sha256=sha256_file(tmp_path / "bare.onnx"), bytes=(tmp_path / "bare.onnx").stat().st_size)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert _predict_json(capsys, chips_dir, "--model", tmp_path / "custom_cnn_fp32.onnx", "--chip")["results"][0]["status"] == "ok"


def test_evaluate_matches_mae_computed_by_hand_from_predict(model_files, chips_dir, tmp_path, capsys):
    """A folder plus a CSV, including a file that is not an image and one without a face, evaluated aligned."""
    data = tmp_path / "set"
    data.mkdir()
    rows = []
    for number, chip in enumerate(sorted(chips_dir.iterdir())):
        age, gender = chip.name.split("_")[:2]
        shutil.copy(chip, data / f"person{number}.jpg")
        rows.append(f"person{number}.jpg,{age},{gender}")
    (data / "broken.jpg").write_text("not an image")
    Image.new("RGB", (300, 300), (128, 128, 128)).save(data / "wall.jpg")
    rows += ["broken.jpg,30,0", "wall.jpg,40,1"]
    (data / "labels.csv").write_text("file,age,gender\n" + "\n".join(rows) + "\n")
    assert main(["evaluate", "--model", str(model_files["onnx"]), "--data", str(data), "--labels",
                 str(data / "labels.csv"), "--align", "--out", str(tmp_path / "eval.json")]) == 0
    summary = json.loads((tmp_path / "eval.json").read_text())
    assert summary["n"] == 14 and summary["unreadable"] == 1 and summary["no_face"] >= 1
    assert summary["found_rate"] == pytest.approx(summary["found"] / 14)
    predicted = {r["file"].split("/")[-1]: r for r in _predict_json(capsys, data, "--model", model_files["onnx"])["results"]}
    truth = {line.split(",")[0]: (int(line.split(",")[1]), int(line.split(",")[2])) for line in rows}
    used = [name for name, r in predicted.items() if r["faces"]]
    assert len(used) == summary["found"]
    largest = {name: max(predicted[name]["faces"], key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
               for name in used}
    mae = np.mean([abs(largest[name]["age"] - truth[name][0]) for name in used])
    accuracy = np.mean([(largest[name]["p_female"] > 0.5) == truth[name][1] for name in used])
    assert summary["age_mae"] == pytest.approx(mae, abs=0.01)  # predict rounds ages to 0.01
    assert summary["gender_accuracy"] == pytest.approx(accuracy)
    assert [round(v, 6) for v in summary["cs"].values()] == sorted(round(v, 6) for v in summary["cs"].values())


def test_evaluate_against_a_second_model_gives_paired_differences(model_files, tiny_custom_cnn_export, chips_dir,
                                                                   tmp_path, capsys):
    """--against scores a second file on the same faces and reports the first minus the second with 95% paired
    intervals; a file against its own copy differs by exactly nothing."""
    int8 = tiny_custom_cnn_export / "custom_cnn_int8.tflite"
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model_files["tflite"]), "--against", str(int8), "--data", str(chips_dir),
                 "--out", str(tmp_path / "eval.json")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "eval.json").read_text())
    against = summary["against"]
    assert against["model"] == str(int8) and against["runtime"] == summary["runtime"] == "tflite"
    difference = against["paired"]
    assert difference["n"] == summary["found"] == against["found"] == 12
    assert difference["age_mae"]["difference"] == pytest.approx(summary["age_mae"] - against["age_mae"])
    low, high = difference["age_mae"]["ci95"]
    assert low <= difference["age_mae"]["difference"] <= high
    assert "first minus second on the 12 faces both found: age MAE" in printed
    assert main(["evaluate", "--model", str(model_files["tflite"]), "--against", str(model_files["tflite"]),
                 "--data", str(chips_dir), "--out", str(tmp_path / "self.json")]) == 0
    itself = json.loads((tmp_path / "self.json").read_text())["against"]["paired"]
    assert all(itself[m] == {"difference": 0.0, "ci95": [0.0, 0.0]} for m in ("age_mae", "cs5", "gender_accuracy"))


def test_evaluate_on_one_part_of_a_runs_split(model_files, tiny_custom_cnn_run, small_faces_dir, tmp_path, capsys):
    """--split RUN/split.json scores exactly that part's faces (validation unless --part says otherwise), so two runs
    can be compared on the faces they were chosen on; a split naming faces the folder lacks, or --part alone, is
    refused with what to do."""
    split_file = tiny_custom_cnn_run / "split.json"
    split = json.loads(split_file.read_text())
    for part in ("val", "test"):
        flags = [] if part == "val" else ["--part", part]
        assert main(["evaluate", "--model", str(model_files["pt"]), "--data", str(small_faces_dir),
                     "--split", str(split_file), *flags, "--out", str(tmp_path / f"{part}.json")]) == 0
        summary = json.loads((tmp_path / f"{part}.json").read_text())
        assert sorted(r["file"] for r in summary["images"]) == sorted(split[part])
        assert summary["split"] == {"file": str(split_file), "part": part}
        assert f"({part} part of {split_file})" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(model_files["pt"]), "--data", str(small_faces_dir),
                 "--part", "test", "--out", str(tmp_path / "no-split.json")]) == 2
    assert "pass --split RUN/split.json too" in capsys.readouterr().err
    elsewhere = tmp_path / "other-faces"
    elsewhere.mkdir()
    for name in split["train"][:3]:
        shutil.copy(small_faces_dir / name, elsewhere / name)
    assert main(["evaluate", "--model", str(model_files["pt"]), "--data", str(elsewhere),
                 "--split", str(split_file), "--out", str(tmp_path / "elsewhere.json")]) == 2
    assert "of the val split are not in" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere.json").exists()
