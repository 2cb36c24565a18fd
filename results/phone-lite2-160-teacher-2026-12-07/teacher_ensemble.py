"""Validation scores of the Lite2 160 px run with the three teachers of ../phone-v3-more4-teachers-2026-12-07/
(Lite1, the 144 px run, phone v3), alone and averaged, as distillation would use them: each sees the phone model's
128 px faces resized to its own input and reads its age as the median of the 101 bins. The evidence for this
trial's rule (b). It scores the validation split only, never the test split.

    .venv/bin/python results/phone-lite2-160-teacher-2026-12-07/teacher_ensemble.py [RUN]   # writes teacher_ensemble.json here

RUN is the Lite2 run folder (default: efficientnet_lite2-phone-160 here, where it is published).
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_data_dir
from edge_age.io import atomic_write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
TEACHERS = {"lite1": RESULTS / "runs-cpu-2026-12-04/efficientnet_lite1-phone",
            "144 px all": RESULTS / "runs-cpu-2026-12-04/efficientnet_lite0-phone-144-all",
            "phone v3": RESULTS / "runs-cpu-2026-12-07/efficientnet_lite0-phone-v3"}


def main() -> None:
    runs = {**TEACHERS, "lite2 160": Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "efficientnet_lite2-phone-160"}
    # the functions of the 2026-12-04 teacher measurement (a script, not a package module)
    measure = SimpleNamespace(**runpy.run_path(str(RESULTS / "runs-cpu-2026-12-04/teacher_ensemble.py")))
    data = load_labelled(resolve_data_dir(None))
    val = decoded_cache(apply_split(data, load_split(TEACHERS["phone v3"] / "split.json"), "val"),
                        measure.STUDENT_SIZE, verbose=False)
    answers = {name: measure.answers_on_validation(run, val.pixels) for name, run in runs.items()}
    results = measure.every_average(answers, val.data.ages, val.data.genders)
    atomic_write_json(HERE / "teacher_ensemble.json", results)


if __name__ == "__main__":
    main()
