"""Shared fixtures: small subsets of the real UTKFace images (never random noise for face questions)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_age.cli import main
from edge_age.data import resolve_data_dir, scan_utkface
from edge_age.quiet import quiet_third_party

quiet_third_party()  # as the edge-age command does: third-party noise filtered at its source


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    """The real UTKFace folder (../shared/data/utkface/images, or $EDGE_AGE_DATA)."""
    return resolve_data_dir(None)


@pytest.fixture(scope="session")
def utkface_all(utkface_dir):
    with pytest.warns(UserWarning, match="skipped"):
        return scan_utkface(utkface_dir)


def copy_real_faces(utkface_all, dest: Path, count: int, seed: int = 0) -> list[str]:
    """Copy ``count`` real UTKFace chips (a seeded draw over ages 1..100) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    eligible = [i for i, a in enumerate(utkface_all.ages) if 1 <= a <= 100]
    chosen = sorted(rng.choice(eligible, size=count, replace=False))
    names = [utkface_all.files[i] for i in chosen]
    for name in names:
        shutil.copy2(utkface_all.root / name, dest / name)
    return names


@pytest.fixture(scope="session")
def small_faces_dir(utkface_all, tmp_path_factory) -> Path:
    """A folder of 60 real UTKFace chips, shared by the tests that train or export."""
    dest = tmp_path_factory.mktemp("faces60")
    copy_real_faces(utkface_all, dest, 60)
    return dest


@pytest.fixture(scope="session")
def tiny_custom_cnn_run(small_faces_dir, tmp_path_factory) -> Path:
    """custom_cnn trained one epoch on the 60 real chips at 32 px: the model the predict, fault and device tests
    share (trained once per session; tests copy it before changing anything)."""
    run = tmp_path_factory.mktemp("tiny-run") / "run"
    assert main(["train", "--model", "custom_cnn", "--data", str(small_faces_dir), "--epochs", "1", "--out", str(run),
                 "--batch-size", "8", "--img-size", "32", "--device", "cpu"]) == 0
    return run


@pytest.fixture(scope="session")
def tiny_custom_cnn_export(tiny_custom_cnn_run, tmp_path_factory) -> Path:
    """Its ONNX and TFLite files, fp32 and int8. A folder apart from the run's, one level down like the tests' own
    tmp_path, so a copy at tmp_path / "export" finds the checkpoint by the same relative path."""
    out = tmp_path_factory.mktemp("tiny-export") / "export"
    assert main(["export", "--run", str(tiny_custom_cnn_run), "--out", str(out), "--formats", "onnx,tflite",
                 "--precisions", "fp32,int8", "--calib-images", "8"]) in (0, 1)  # a tiny int8 model may fail parity
    return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Decoded caches go to a per-session temp folder, never the user's ~/.cache."""
    monkeypatch.setenv("EDGE_AGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
