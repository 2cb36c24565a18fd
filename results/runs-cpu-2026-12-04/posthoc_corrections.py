"""Would a correction fitted after training help phone v2? Two candidates, each fitted on half of the validation
split and scored on the other half, over 20 random halvings (validation only; the test split is never read):
- age: a piecewise-linear shift by predicted age, the median residual near each knot (regression to the mean
  leaves the old read young and the young read old);
- gender: the P(female) threshold with the best accuracy on the fitting half, instead of 0.5.

    .venv/bin/python results/runs-cpu-2026-12-04/posthoc_corrections.py   # writes posthoc_corrections.json here
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.inference import predict
from edge_age.io import atomic_write_json

HERE = Path(__file__).resolve().parent
RUN = HERE / "efficientnet_lite0-phone-v2"
KNOTS = np.array([0, 5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 80, 100.0])
THRESHOLDS = np.linspace(0.3, 0.7, 41)


def fit_age_shift(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The median residual of the faces predicted between each knot's neighbours (0 where fewer than 20)."""
    shifts = []
    for i in range(len(KNOTS)):
        near = (predicted >= KNOTS[max(i - 1, 0)]) & (predicted <= KNOTS[min(i + 1, len(KNOTS) - 1)])
        shifts.append(float(np.median(true[near] - predicted[near])) if near.sum() > 20 else 0.0)
    return np.array(shifts)


def main() -> None:
    model, _ = load_model(RUN / "best.pt")
    config = json.loads((RUN / "config.json").read_text())
    data = load_labelled(resolve_run_data_dir(None, config.get("data_root"), RUN))
    val = decoded_cache(apply_split(data, load_split(RUN / "split.json"), "val"), model.input_spec.size, verbose=False)
    out = predict(model, val.pixels)
    age, p_female = out["age"], out["gender_prob"]
    ages, genders = val.data.ages.astype(float), val.data.genders
    rng = np.random.default_rng(0)
    mae_change, cs5_change, gender_change = [], [], []
    for _ in range(20):
        order = rng.permutation(len(ages))
        halves = order[:len(order) // 2], order[len(order) // 2:]
        for fit, held in (halves, halves[::-1]):
            shifted = np.clip(age[held] + np.interp(age[held], KNOTS, fit_age_shift(age[fit], ages[fit])), 0, 100)
            before, after = np.abs(age[held] - ages[held]), np.abs(shifted - ages[held])
            mae_change.append(after.mean() - before.mean())
            cs5_change.append((after <= 5).mean() - (before <= 5).mean())
            best = THRESHOLDS[np.argmax([((p_female[fit] > t) == genders[fit]).mean() for t in THRESHOLDS])]
            gender_change.append(100 * (((p_female[held] > best) == genders[held]).mean()
                                        - ((p_female[held] > 0.5) == genders[held]).mean()))
    summary = {"run": RUN.name, "n_validation": len(ages), "halvings": 20,
               "age_shift_mae_change_years": {"mean": float(np.mean(mae_change)), "std": float(np.std(mae_change))},
               "age_shift_cs5_change": {"mean": float(np.mean(cs5_change)), "std": float(np.std(cs5_change))},
               "gender_threshold_accuracy_change_points": {"mean": float(np.mean(gender_change)),
                                                           "std": float(np.std(gender_change))}}
    print(json.dumps(summary, indent=2))
    atomic_write_json(HERE / "posthoc_corrections.json", summary)


if __name__ == "__main__":
    main()
