"""Phone v2's split with 3,000 of its 3,999 validation faces moved into training (run from the repo root).

The faces to move are drawn with a fixed seed from the sorted validation list, so the file is rebuilt exactly;
the test split is untouched and the 999 faces left in validation were never trained on by phone v3 or its teachers.
"""
from pathlib import Path

import numpy as np

from edge_age.data import load_split, save_split

MOVED = 3000
SOURCE = Path("results/runs-cpu-2026-12-04/efficientnet_lite0-phone-v2/split.json")
TARGET = Path(__file__).parent / "split.json"

split = load_split(SOURCE)
val = sorted(split["val"])
order = np.random.default_rng(0).permutation(len(val))
moved = {val[i] for i in order[:MOVED]}
split["train"] = sorted(split["train"] + sorted(moved))
split["val"] = [f for f in val if f not in moved]
split["counts"] = {name: len(split[name]) for name in ("train", "val", "test")}
split["derived_from"] = {"split": str(SOURCE), "moved_val_to_train": MOVED, "seed": 0}
print(TARGET, save_split(split, TARGET), split["counts"])
