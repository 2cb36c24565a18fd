"""Score the two half-validation runs against phone v2 on the validation faces each did not train on.

Each run (``half_val_splits.py``) trained on phone v2's training faces plus one half of its validation faces and
chose its epoch on the other half. Here both it and phone v2 read that other half (age as the median of the 101
bins, as the shipped model reads it); the difference is paired face by face, with a bootstrap interval over faces.
The test split is never read.

    .venv/bin/python results/runs-cpu-2026-12-05/score_half_val.py   # writes score_half_val.json here
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.inference import predict
from edge_age.io import atomic_write_json
from edge_age.metrics import summarize

HERE = Path(__file__).resolve().parent
PHONE_V2 = HERE.parent / "runs-cpu-2026-12-04" / "efficientnet_lite0-phone-v2"
RUNS = {"A": HERE / "efficientnet_lite0-phone-trainA", "B": HERE / "efficientnet_lite0-phone-trainB"}


def scores(age: np.ndarray, p_female: np.ndarray, ages: np.ndarray, genders: np.ndarray) -> dict:
    """The project's own metrics, the three the targets name."""
    summary = summarize(age, ages, p_female, genders)
    return {key: summary[key] for key in ("age_mae", "cs5", "gender_accuracy")}


def main() -> None:
    phone_v2, _ = load_model(PHONE_V2 / "best.pt")
    config = json.loads((PHONE_V2 / "config.json").read_text())
    data = load_labelled(resolve_run_data_dir(None, config.get("data_root"), PHONE_V2))
    summary, pooled = {"phone_v2": PHONE_V2.name, "halves": {}}, {"run": [], "phone_v2": [], "ages": [], "g": []}
    for trained, run in RUNS.items():
        if not (run / "best.pt").is_file():
            print(f"{run.name}: no best.pt (remake it with the command in its README); skipped")
            continue
        model, best = load_model(run / "best.pt")
        held = decoded_cache(apply_split(data, load_split(run / "split.json"), "val"), model.input_spec.size,
                             verbose=False)
        ages, genders = held.data.ages.astype(float), held.data.genders
        new, old = predict(model, held.pixels), predict(phone_v2, held.pixels)
        summary["halves"][trained] = {"run": run.name, "best_epoch": best["epoch"], "n": len(ages),
                                      "run_scores": scores(new["age"], new["gender_prob"], ages, genders),
                                      "phone_v2_scores": scores(old["age"], old["gender_prob"], ages, genders)}
        for key, out in (("run", new), ("phone_v2", old)):
            pooled[key].append(out)
        pooled["ages"].append(ages)
        pooled["g"].append(genders)
    if not pooled["ages"]:
        raise SystemExit("no half run found; train them first (see the README beside this script)")
    ages, genders = np.concatenate(pooled["ages"]), np.concatenate(pooled["g"])
    new_age = np.concatenate([o["age"] for o in pooled["run"]])
    old_age = np.concatenate([o["age"] for o in pooled["phone_v2"]])
    new_p = np.concatenate([o["gender_prob"] for o in pooled["run"]])
    old_p = np.concatenate([o["gender_prob"] for o in pooled["phone_v2"]])
    error_change = np.abs(new_age - ages) - np.abs(old_age - ages)
    cs5_change = (np.abs(new_age - ages) <= 5).astype(float) - (np.abs(old_age - ages) <= 5)
    gender_change = ((new_p > 0.5) == genders).astype(float) - ((old_p > 0.5) == genders)
    rng = np.random.default_rng(0)
    draws = rng.integers(0, len(ages), size=(2000, len(ages)))
    summary["pooled"] = {
        "n": len(ages),
        "run_scores": scores(new_age, new_p, ages, genders),
        "phone_v2_scores": scores(old_age, old_p, ages, genders),
        "change": {name: {"mean": float(values.mean()),
                          "bootstrap_95": [float(q) for q in np.percentile(values[draws].mean(axis=1), [2.5, 97.5])]}
                   for name, values in (("age_mae", error_change), ("cs5", cs5_change),
                                        ("gender_accuracy", gender_change))}}
    print(json.dumps(summary, indent=2))
    atomic_write_json(HERE / "score_half_val.json", summary)


if __name__ == "__main__":
    main()
