"""Validation MAE and CS(5) of each way of reading a 101-bin model's age (expectation, median, regression neuron),
for every run folder here that has its checkpoint. This is the evidence for EfficientNet-Lite's median reading
(edge_age/models/age_bins.py); it scores the validation split only, never the test split.

    .venv/bin/python results/runs-cpu-2026-12-04/age_readings.py [RUN_DIR ...]   # writes age_readings.json here

Without arguments it scores the runs here that have a best.pt. The published age_readings.json also has the 144 px
run, scored from its checkpoint in runs/cpu/ (not committed: over the budget of files this folder keeps).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.inference import predict
from edge_age.io import atomic_write_json
from edge_age.train.engine import AGE_READINGS

HERE = Path(__file__).resolve().parent


def readings_on_validation(run_dir: Path) -> dict:
    model, _ = load_model(run_dir / "best.pt")
    config = json.loads((run_dir / "config.json").read_text())
    data = load_labelled(resolve_run_data_dir(None, config.get("data_root"), run_dir))
    val = decoded_cache(apply_split(data, load_split(run_dir / "split.json"), "val"), model.input_spec.size,
                        verbose=False)
    out = predict(model, val.pixels)
    errors = {key: np.abs(out[key] - val.data.ages) for key in AGE_READINGS if key in out}
    return {"n": len(val), "model": model.model_name, "options": model.options,
            **{key.split("_")[1]: {"mae": float(e.mean()), "cs5": float((e <= 5).mean())} for key, e in errors.items()}}


def main(run_dirs: list[Path]) -> None:
    results = {}
    for run_dir in run_dirs:
        results[run_dir.name] = row = readings_on_validation(run_dir)
        cells = ", ".join(f"{name} {row[name]['mae']:.3f} / {row[name]['cs5']:.3f}"
                          for name in ("expectation", "median", "regression") if name in row)
        print(f"{run_dir.name} (validation, {row['n']} faces; MAE / CS(5)): {cells}", flush=True)
    atomic_write_json(HERE / "age_readings.json", results)


if __name__ == "__main__":
    main([Path(p) for p in sys.argv[1:]] or sorted(p.parent for p in HERE.glob("*/best.pt")))
