"""Shared fixtures: small subsets of the real UTKFace images (never random noise for face questions)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Decoded caches go to a per-session temp folder, never the user's ~/.cache."""
    monkeypatch.setenv("EDGE_AGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
