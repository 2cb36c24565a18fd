"""The Android demo's checks that can run without a phone: the shipped model files agree with their manifest,
embedded metadata and golden vectors; the Java core (compiled on the host JVM) reproduces LiteRT's input
tensors and answers on real faces; the phone's two-eye crop stays close to `edge-age predict`'s."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_age.export import android
from edge_age.cli import main
from edge_age.faces import CHIP_SIZE, FaceAligner, eye_centres, largest
from edge_age.images import resize_square
from edge_age.formats.tflite import TFLiteRunner
from edge_age.io import sha256_file
from edge_age.runtimes import open_model_file
from tests.conftest import copy_real_faces

SHIPPED = ("fp32", "int8")  # the precisions installed in the app's assets

HOST_TEST = android.DEMO / "core" / "host-test.sh"
JUNIT = Path(os.environ.get("JUNIT_JAR", "/usr/share/java/junit4.jar"))


def host_test(*jvm_options: str) -> subprocess.CompletedProcess:
    """Compile and run the Java core's JUnit tests; skipped where no JDK/JUnit (CI requires them)."""
    if not (shutil.which("javac") and JUNIT.is_file()):
        message = "javac or JUnit 4 missing: apt-get install default-jdk-headless junit4"
        if os.environ.get("EDGE_AGE_REQUIRE_JAVA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run([str(HOST_TEST), *jvm_options], capture_output=True, text=True, timeout=600)


def shipped_manifest() -> dict:
    return json.loads((android.DEFAULT_ASSETS / android.MANIFEST).read_text())


def test_shipped_assets_manifest_metadata_and_golden_vectors_agree():
    golden = android.check_golden()
    files = {entry["file"] for entry in shipped_manifest()["files"]}
    assert {case["file"] for case in golden["cases"]} == files
    # a float file and the full-integer file (the phone model's fp16 file fails its parity bound, so fp32 ships)
    assert {entry["precision"] for entry in shipped_manifest()["files"]} == {"fp32", "int8"}
    assert len(golden["faces"]) >= 2


def test_java_core_reproduces_the_shipped_golden_vectors():
    result = host_test()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK (" in result.stdout


def test_java_core_fails_on_altered_vectors(tmp_path):
    golden = json.loads(android.DEFAULT_GOLDEN.read_text())
    golden["faces"][0]["eye_left"][0] += 0.5  # half a pixel: the input tensors no longer match
    golden["cases"][0]["age"] += 0.01  # a hundredth of a year: the decoded age no longer matches
    altered = tmp_path / "golden.json"
    altered.write_text(json.dumps(golden))
    result = host_test(f"-Dedgeage.golden={altered}")
    assert result.returncode != 0
    assert "input" in result.stdout and ": age" in result.stdout


def _faces_dlib_finds(utkface_all, folder: Path, count: int) -> list[Path]:
    copy_real_faces(utkface_all, folder, count * 2, seed=7)
    aligner = FaceAligner()
    found = [p for p in sorted(folder.iterdir()) if largest(aligner.find(Image.open(p))) is not None]
    assert len(found) >= count
    return found[:count]


def test_java_core_on_real_utkface_faces(utkface_all, tmp_path):
    images = _faces_dlib_finds(utkface_all, tmp_path / "faces", 4)
    golden_path = tmp_path / "golden.json"
    golden = android.write_golden(android.DEFAULT_ASSETS, golden_path, images)
    assert len(golden["cases"]) == 4 * len(shipped_manifest()["files"])
    result = host_test(f"-Dedgeage.golden={golden_path}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_phone_crop_stays_close_to_predict(utkface_all, tmp_path):
    """The app aligns from two eye points and warps straight to the input size; predict fits five landmarks and
    resizes a 200 px chip. On real faces the two should give nearly the same answers."""
    images = _faces_dlib_finds(utkface_all, tmp_path / "faces", 40)
    int8 = next(e["file"] for e in shipped_manifest()["files"] if e["precision"] == "int8")
    model = open_model_file(android.DEFAULT_ASSETS / int8)
    runner = TFLiteRunner(android.DEFAULT_ASSETS / int8)
    aligner = FaceAligner()
    predict_path, phone_path = [], []
    for path in images:
        image = Image.open(path).convert("RGB")
        face = largest(aligner.find(image))
        predict_path.append([v[0] for v in model.predict(resize_square(face.chip, model.size)[None])])
        tensor = android.phone_input(np.asarray(image), *eye_centres(face.landmarks), model.description["input"])
        phone_path.append([float(runner.dequantize(d, v).reshape(-1)[0])
                           for d, v in zip(runner.outputs, runner.run_raw(runner.quantize_input(tensor)))])
    predict_path, phone_path = np.array(predict_path), np.array(phone_path)
    age_change = np.abs(predict_path[:, 0] - phone_path[:, 0])
    gender_agreement = np.mean((predict_path[:, 1] > 0.5) == (phone_path[:, 1] > 0.5))
    print(f"\nphone crop vs predict on {len(images)} real faces: age change median {np.median(age_change):.2f} y, "
          f"mean {age_change.mean():.2f} y, max {age_change.max():.2f} y; gender agreement {gender_agreement:.3f}")
    assert age_change.mean() < 2.0
    assert gender_agreement >= 0.9


def test_phone_pixels_give_the_chip_back_when_the_eyes_sit_on_the_template(utkface_all, tmp_path):
    chip = np.asarray(Image.open(sorted(_faces_dlib_finds(utkface_all, tmp_path / "f", 1))[0]).convert("RGB"))
    assert chip.shape[:2] == (CHIP_SIZE, CHIP_SIZE)
    (left, right) = android.EYE_TEMPLATE
    pixels = android.phone_pixels(chip, android.eye_alignment_transform(left, right), CHIP_SIZE)
    np.testing.assert_array_equal(pixels, chip.astype(np.float32))


def _export_folder(tmp_path: Path) -> Path:
    """An export folder holding the shipped TFLite files and an export manifest that lists them, plus one
    variant marked as having failed its parity check."""
    shipped = shipped_manifest()
    export = tmp_path / "export"
    export.mkdir()
    files = []
    for entry in shipped["files"]:
        shutil.copy2(android.DEFAULT_ASSETS / entry["file"], export / entry["file"])
        files.append({"file": entry["file"], "format": "tflite", "precision": entry["precision"], "status": "pass",
                      "parity": entry["parity"]})
    shutil.copy2(export / files[0]["file"], export / "model_fp16.tflite")
    files.append({"file": "model_fp16.tflite", "format": "tflite", "precision": "fp16", "status": "failed parity",
                  "reason": "age max diff 0.5 y exceeds 0.01"})
    for entry in files:  # what the exporter records of each file, so the installer can verify it
        entry.update(bytes=(export / entry["file"]).stat().st_size, sha256=sha256_file(export / entry["file"]))
    manifest = {key: shipped[key] for key in ("model", "input", "outputs", "source")}
    (export / "manifest.json").write_text(json.dumps({"format": "edge-age-export/1", **manifest, "files": files}))
    return export


def test_install_reproduces_the_shipped_golden_vectors(tmp_path):
    assets, golden_path = tmp_path / "assets", tmp_path / "golden.json"
    android.install(_export_folder(tmp_path), assets, SHIPPED, golden_path)
    fresh, shipped = json.loads(golden_path.read_text()), json.loads(android.DEFAULT_GOLDEN.read_text())
    assert fresh["files"] == shipped["files"]
    assert fresh["faces"] == shipped["faces"]
    for new, old in zip(fresh["cases"], shipped["cases"]):
        assert new["input_base64"] == old["input_base64"]
        assert new["age"] == pytest.approx(old["age"], abs=1e-5)
        assert new["p_female"] == pytest.approx(old["p_female"], abs=1e-5)


def test_app_manifest_leads_back_to_the_checkpoint_it_came_from(tmp_path):
    """The app manifest's run and checkpoint paths resolve from the assets folder (where that manifest lives) to the
    checkpoint whose sha256 it records, in the shipped app and after a fresh install elsewhere."""
    shipped = json.loads((android.DEFAULT_ASSETS / "manifest.json").read_text())["source"]
    checkpoint = (android.DEFAULT_ASSETS / shipped["checkpoint"]).resolve()
    assert sha256_file(checkpoint) == shipped["checkpoint_sha256"]
    assert (android.DEFAULT_ASSETS / shipped["run"]).resolve() == checkpoint.parent
    assets = tmp_path / "elsewhere" / "assets"
    android.install(android.DEFAULT_ASSETS / shipped["export"], assets, ("int8",), tmp_path / "golden.json")
    fresh = json.loads((assets / "manifest.json").read_text())["source"]
    assert (assets / fresh["checkpoint"]).resolve() == checkpoint
    assert (assets / fresh["run"]).resolve() == checkpoint.parent


def test_install_refuses_failed_or_missing_variants_and_replaces_its_own_files(tmp_path):
    export, assets = _export_folder(tmp_path), tmp_path / "assets"
    with pytest.raises(ValueError, match="failed its parity check"):
        android.install(export, assets, ("fp16",), golden=None)
    with pytest.raises(ValueError, match="has no TFLite int8-dynamic file"):
        android.install(export, assets, ("int8-dynamic",), golden=None)
    android.install(export, assets, SHIPPED, golden=None)
    before = {p.name: p.read_bytes() for p in assets.iterdir()}
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["input"]["mean"] = [0.5, 0.5, 0.5]  # the files' own metadata says otherwise: refused, assets untouched
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(android.AssetMismatch, match="metadata input mean"):
        android.install(export, assets, SHIPPED, golden=None)
    assert {p.name: p.read_bytes() for p in assets.iterdir()} == before
    manifest["input"]["mean"] = shipped_manifest()["input"]["mean"]
    (export / "manifest.json").write_text(json.dumps(manifest))
    (assets / "notes.txt").write_text("the user's own file")
    android.install(export, assets, ("int8",), golden=None)
    assert sorted(p.name for p in assets.iterdir()) == sorted(["manifest.json", "notes.txt"] + [
        e["file"] for e in shipped_manifest()["files"] if e["precision"] == "int8"])


def test_check_assets_names_each_mismatch(tmp_path):
    assets = tmp_path / "assets"
    shutil.copytree(android.DEFAULT_ASSETS, assets)
    android.check_assets(assets)
    manifest = json.loads((assets / "manifest.json").read_text())
    int8 = next(e["file"] for e in manifest["files"] if e["precision"] == "int8")

    shutil.copy2(assets / int8, assets / "stray.tflite")
    with pytest.raises(android.AssetMismatch, match="stray.tflite: in the assets but not in the manifest"):
        android.check_assets(assets)
    (assets / "stray.tflite").unlink()

    manifest["input"]["size"] = 96
    (assets / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(android.AssetMismatch, match="input shape .* manifest size 96"):
        android.check_assets(assets)
    manifest["input"]["size"] = shipped_manifest()["input"]["size"]
    manifest["input"]["mean"] = [0.5, 0.5, 0.5]
    (assets / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(android.AssetMismatch, match="metadata input mean.*TFLITE_METADATA mean"):
        android.check_assets(assets)

    shutil.copy2(android.DEFAULT_ASSETS / "manifest.json", assets / "manifest.json")
    (assets / int8).write_bytes((assets / int8).read_bytes()[:1000])
    with pytest.raises(android.AssetMismatch, match="sha256 differs.*LiteRT cannot load it"):
        android.check_assets(assets)
    (assets / int8).unlink()
    with pytest.raises(android.AssetMismatch, match="listed in the manifest but missing"):
        android.check_assets(assets)
    (assets / "manifest.json").unlink()
    with pytest.raises(android.AssetMismatch, match="edge-age android install"):
        android.check_assets(assets)


def test_golden_vectors_of_other_files_are_refused(tmp_path):
    golden = json.loads(android.DEFAULT_GOLDEN.read_text())
    name = next(iter(golden["files"]))
    golden["files"][name] = "0" * 64
    stale = tmp_path / "golden.json"
    stale.write_text(json.dumps(golden))
    with pytest.raises(android.AssetMismatch, match="regenerate"):
        android.check_golden(android.DEFAULT_ASSETS, stale)


def test_android_command_line(capsys, tmp_path):
    assert main(["android", "check"]) == 0
    assert "agree" in capsys.readouterr().out
    assert main(["android", "install", str(tmp_path / "no-export"), "--assets", str(tmp_path / "a")]) == 2
    assert "no export manifest" in capsys.readouterr().err
