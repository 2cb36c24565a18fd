"""Does the app's int8 file lose gender answers, or only move borderline faces both ways? Phone v2's checkpoint
and its exported TFLite files scored on the validation split (never the test split), with each file's gender
answers compared face by face against the checkpoint's.

    .venv/bin/python results/phone-trials-2026-12-05/int8_gender_flips.py    # writes int8_gender_flips.json here
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_data_dir
from edge_age.io import atomic_write_json
from edge_age.runtimes import open_model_file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUN = REPO / "results/runs-cpu-2026-12-04/efficientnet_lite0-phone-v2"
EXPORT = REPO / "results/exports-2026-12-04/efficientnet_lite0-phone-v2"
FILES = ["efficientnet_lite0_fp32.tflite", "efficientnet_lite0_int8.tflite", "efficientnet_lite0_int8-dynamic.tflite"]


def main() -> None:
    val = decoded_cache(apply_split(load_labelled(resolve_data_dir()), load_split(RUN / "split.json"), "val"), 128,
                        verbose=False)
    results, reference = {}, None
    for path in [RUN / "best.pt", *(EXPORT / name for name in FILES)]:
        age, p_female = open_model_file(path, threads=1).predict(val.pixels)
        errors = np.abs(age - val.data.ages)
        right = (p_female >= 0.5).astype(int) == val.data.genders
        row = {"mae": float(errors.mean()), "cs5": float((errors <= 5).mean()), "gender_accuracy": float(right.mean())}
        if reference is None:
            reference = right
        else:  # faces this file answers right and the checkpoint wrong, and the other way round
            row.update(gender_fixed=int((right & ~reference).sum()), gender_broken=int((~right & reference).sum()))
        results[path.name] = row
        print(path.name, row, flush=True)
    atomic_write_json(HERE / "int8_gender_flips.json", {"split": "val", "n": len(val), "files": results})


if __name__ == "__main__":
    main()
