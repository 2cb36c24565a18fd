"""Validation scores of weight averages ("model soups", Wortsman et al. 2022) of the committed same-split
EfficientNet-Lite0 runs: one phone-sized network with the averaged weights, unlike the teachers' average of answers
(teacher_ensemble.py), which costs one network per member. All three runs start from the same ImageNet weights and
were trained on phone v2's split; each is scored at the phone model's 128 px, age read as the median of the 101
bins. It scores the validation split only, never the test split.

    .venv/bin/python results/runs-cpu-2026-12-04/weight_averages.py     # writes weight_averages.json here
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.inference import predict
from edge_age.io import atomic_write_json
from edge_age.metrics import summarize

HERE = Path(__file__).resolve().parent
RUNS = ["efficientnet_lite0-phone", "efficientnet_lite0-phone-v2", "efficientnet_lite0-phone-144-all"]
SIZE = 128


def averaged(models: list[torch.nn.Module]) -> torch.nn.Module:
    """The first model with every floating-point tensor (BatchNorm statistics included) replaced by the mean."""
    states = [m.state_dict() for m in models]
    soup = load_model(HERE / RUNS[1] / "best.pt")[0]
    soup.load_state_dict({key: torch.stack([s[key].float() for s in states]).mean(0).to(value.dtype)
                          if value.is_floating_point() else value for key, value in states[0].items()})
    return soup.eval()


def main() -> None:
    first = HERE / RUNS[1]
    config = json.loads((first / "config.json").read_text())
    data = load_labelled(resolve_run_data_dir(None, config.get("data_root"), first))
    val = decoded_cache(apply_split(data, load_split(first / "split.json"), "val"), SIZE, verbose=False)
    models = {name: load_model(HERE / name / "best.pt")[0].float() for name in RUNS}
    results = {}
    for count in range(1, len(RUNS) + 1):
        for names in itertools.combinations(RUNS, count):
            model = models[names[0]] if count == 1 else averaged([models[n] for n in names])
            out = predict(model, val.pixels, batch_size=128)
            summary = summarize(out["age"], val.data.ages, out["gender_prob"], val.data.genders)
            results[" + ".join(names)] = row = {"mae": float(summary["age_mae"]), "cs5": float(summary["cs5"]),
                                                "gender_accuracy": float(summary["gender_accuracy"])}
            print(f"{' + '.join(names)}: val MAE {row['mae']:.3f}, CS(5) {row['cs5']:.3f}, "
                  f"gender {row['gender_accuracy']:.4f}", flush=True)
    atomic_write_json(HERE / "weight_averages.json", {"split": "val", "n": len(val), "input_px": SIZE,
                                                       "reading": "median", "scores": results})


if __name__ == "__main__":
    main()
