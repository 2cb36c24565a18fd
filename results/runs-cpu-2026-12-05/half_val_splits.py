"""Two splits that move half of phone v2's validation faces into training (2026-12-05).

Why: every recipe change tried for the phone model landed within about 0.1 year of phone v2 on validation. More
labelled faces is the other lever. This draws phone v2's 3,999 validation faces into two fixed halves, A and B, and
writes two splits with the same 2,000 test faces:

- ``split-trainA.json``: train = phone v2's train + A, val = B
- ``split-trainB.json``: train = phone v2's train + B, val = A

Each run is then compared with phone v2 on the half it did not train on (``score_half_val.py``), so the two runs
are a two-fold check of what 2,000 more training faces buy, scored on all 3,999 validation faces.

Run from the repo root: ``python results/runs-cpu-2026-12-05/half_val_splits.py``
"""
from pathlib import Path

import numpy as np

from edge_age.data import load_split, save_split

HERE = Path(__file__).resolve().parent
PHONE_V2_SPLIT = HERE.parent / "runs-cpu-2026-12-04" / "efficientnet_lite0-phone-v2" / "split.json"
SEED = 5  # the halving's own seed, fixed before any run was made


def half_val_splits() -> dict[str, dict]:
    base = load_split(PHONE_V2_SPLIT)
    val = sorted(base["val"])
    order = np.random.default_rng(SEED).permutation(len(val))
    half = {"A": sorted(val[i] for i in order[:len(val) // 2]), "B": sorted(val[i] for i in order[len(val) // 2:])}
    splits = {}
    for trained, held_out in (("A", "B"), ("B", "A")):
        split = {"seed": base["seed"], "subset": base["subset"], "fractions": base["fractions"],
                 "derived_from": "../runs-cpu-2026-12-04/efficientnet_lite0-phone-v2/split.json",
                 "halving": {"seed": SEED, "trained_half": trained, "validation_half": held_out}}
        parts = {"train": sorted(base["train"] + half[trained]), "val": half[held_out], "test": base["test"]}
        split["counts"] = {name: len(files) for name, files in parts.items()}
        split.update(parts)
        splits[f"split-train{trained}.json"] = split
    return splits


if __name__ == "__main__":
    for name, split in half_val_splits().items():
        save_split(split, HERE / name)
        load_split(HERE / name)  # the engine's own checks: no face in two parts
        print(name, split["counts"])
