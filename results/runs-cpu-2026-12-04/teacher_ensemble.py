"""Validation scores of the teachers of the distilled phone model, alone and averaged, read as the models read their
age (the median of the 101 bins, edge_age/models/age_bins.py). Each teacher sees the 128 px validation chips the
student sees, resized to its own input size the way distillation resizes them (train/distill.py). This is the
evidence for choosing the teachers; it scores the validation split only, never the test split.

    .venv/bin/python results/runs-cpu-2026-12-04/teacher_ensemble.py     # writes teacher_ensemble.json here
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.io import atomic_write_json
from edge_age.models.age_bins import AgeBinsReadout
from edge_age.train.distill import Teachers

HERE = Path(__file__).resolve().parent
TEACHERS = ["efficientnet_lite0-phone-v2", "efficientnet_lite1-phone", "efficientnet_lite0-phone-144-all"]
STUDENT_SIZE = 128


def answers_on_validation(run_dir: Path, pixels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One teacher's age distribution and P(female) for each validation face, as distillation computes them."""
    model, _ = load_model(run_dir / "best.pt")
    teacher = Teachers([model], weight=1.0)
    probs, genders = [], []
    for start in range(0, len(pixels), 256):
        x01 = torch.from_numpy(np.array(pixels[start:start + 256])).permute(0, 3, 1, 2).float() / 255
        answers = teacher.soft_targets(x01, amp_dtype=None)
        probs.append(answers["age_probs"])
        genders.append(answers["gender_prob"])
    return torch.cat(probs), torch.cat(genders)


def scores(probs: torch.Tensor, genders: torch.Tensor, ages: np.ndarray, female: np.ndarray) -> dict:
    age = AgeBinsReadout()(probs.clamp_min(1e-12).log())["age_median"].numpy()
    errors = np.abs(age - ages)
    return {"mae": float(errors.mean()), "cs5": float((errors <= 5).mean()),
            "gender_accuracy": float(((genders.numpy() > 0.5) == female).mean())}


def every_average(answers: dict, ages: np.ndarray, female: np.ndarray) -> dict:
    """Scores of each model alone and of every average of two or more ({name: (probs, P(female))}), printed too."""
    results = {}
    for count in range(1, len(answers) + 1):
        for names in itertools.combinations(answers, count):
            probs = torch.stack([answers[n][0] for n in names]).mean(0)
            genders = torch.stack([answers[n][1] for n in names]).mean(0)
            results[" + ".join(names)] = row = scores(probs, genders, ages, female)
            print(f"{' + '.join(names)}: val MAE {row['mae']:.3f}, CS(5) {row['cs5']:.3f}, "
                  f"gender {row['gender_accuracy']:.4f}", flush=True)
    return results


def main() -> None:
    first = HERE / TEACHERS[0]
    config = json.loads((first / "config.json").read_text())
    data = load_labelled(resolve_run_data_dir(None, config.get("data_root"), first))
    val = decoded_cache(apply_split(data, load_split(first / "split.json"), "val"), STUDENT_SIZE, verbose=False)
    answers = {name: answers_on_validation(HERE / name, val.pixels) for name in TEACHERS}
    results = every_average(answers, val.data.ages, val.data.genders)
    atomic_write_json(HERE / "teacher_ensemble.json", {"split": "val", "n": len(val), "input_px": STUDENT_SIZE,
                                                        "reading": "median", "scores": results})


if __name__ == "__main__":
    main()
