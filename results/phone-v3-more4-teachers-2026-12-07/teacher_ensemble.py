"""Validation scores of phone v3 and the three teachers it learned from, alone and averaged, read as the models
read their age (the median of the 101 bins). The same measurement as ../runs-cpu-2026-12-04/teacher_ensemble.py
(whose functions it uses), with phone v3 among the candidates: the evidence for this trial's teachers. It scores the
validation split only, never the test split.

    .venv/bin/python results/phone-v3-more4-teachers-2026-12-07/teacher_ensemble.py   # writes teacher_ensemble.json here
"""
from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_data_dir
from edge_age.io import atomic_write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
RUNS = {"phone v2": RESULTS / "runs-cpu-2026-12-04/efficientnet_lite0-phone-v2",
        "lite1": RESULTS / "runs-cpu-2026-12-04/efficientnet_lite1-phone",
        "144 px all": RESULTS / "runs-cpu-2026-12-04/efficientnet_lite0-phone-144-all",
        "phone v3": RESULTS / "runs-cpu-2026-12-07/efficientnet_lite0-phone-v3"}


def main() -> None:
    # the functions of the 2026-12-04 teacher measurement (a script, not a package module)
    measure = SimpleNamespace(**runpy.run_path(str(RESULTS / "runs-cpu-2026-12-04/teacher_ensemble.py")))
    data = load_labelled(resolve_data_dir(None))
    val = decoded_cache(apply_split(data, load_split(RUNS["phone v2"] / "split.json"), "val"), measure.STUDENT_SIZE,
                        verbose=False)
    answers = {name: measure.answers_on_validation(run, val.pixels) for name, run in RUNS.items()}
    results = measure.every_average(answers, val.data.ages, val.data.genders)
    atomic_write_json(HERE / "teacher_ensemble.json", results)


if __name__ == "__main__":
    main()
