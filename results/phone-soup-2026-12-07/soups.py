"""Validation scores of uniform weight averages ("model soups") of phone v3 and its same-split relatives, each
compared face by face with phone v3 (95% paired bootstrap intervals). The soups are the ones README.md fixed
before any was scored. It scores the validation split only, never the test split.

    .venv/bin/python results/phone-soup-2026-12-07/soups.py      # writes soups.json here
"""
from __future__ import annotations

import json
import runpy
from pathlib import Path

from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_run_data_dir
from edge_age.inference import predict
from edge_age.io import atomic_write_json, sha256_file
from edge_age.metrics import paired_differences, summarize

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
V3 = REPO / "results/runs-cpu-2026-12-07/efficientnet_lite0-phone-v3"
MEMBERS = {
    "v3": V3 / "best.pt",
    "more8": REPO / "runs/cpu/efficientnet_lite0-phone-v3-more8/best.pt",
    "more4-teachers": REPO / "runs/cpu/efficientnet_lite0-phone-v3-more4-teachers/best.pt",
    "kd4": REPO / "runs/cpu/efficientnet_lite0-phone-kd4/best.pt",
}
SOUPS = [("v3", "kd4"), ("v3", "more8", "more4-teachers"), ("v3", "more8", "more4-teachers", "kd4")]
SIZE = 128
# the uniform weight average of the 2026-12-04 soups (a script, not a package module)
averaged = runpy.run_path(str(REPO / "results/runs-cpu-2026-12-04/weight_averages.py"))["averaged"]


def main() -> None:
    missing = [str(path) for path in MEMBERS.values() if not path.is_file()]
    if missing:
        raise SystemExit(f"missing member checkpoints: {', '.join(missing)}; remake them with the commands in "
                         "their results folders' README.md")
    config = json.loads((V3 / "config.json").read_text())
    data = load_labelled(resolve_run_data_dir(None, config.get("data_root"), V3))
    val = decoded_cache(apply_split(data, load_split(V3 / "split.json"), "val"), SIZE, verbose=False)
    models = {name: load_model(path)[0].float() for name, path in MEMBERS.items()}
    answers = {}
    for names in [(name,) for name in MEMBERS] + SOUPS:
        model = models[names[0]] if len(names) == 1 else averaged([models[n] for n in names])
        answers[" + ".join(names)] = predict(model, val.pixels, batch_size=128)
    results = {}
    for name, out in answers.items():
        summary = summarize(out["age"], val.data.ages, out["gender_prob"], val.data.genders)
        against_v3 = paired_differences({"age": out["age"], "female_prob": out["gender_prob"]},
                                        {"age": answers["v3"]["age"], "female_prob": answers["v3"]["gender_prob"]},
                                        val.data.ages, val.data.genders)
        results[name] = row = {"mae": float(summary["age_mae"]), "cs5": float(summary["cs5"]),
                               "gender_accuracy": float(summary["gender_accuracy"]), "minus_v3": against_v3}
        low, high = against_v3["age_mae"]["ci95"]
        print(f"{name}: val MAE {row['mae']:.3f}, CS(5) {row['cs5']:.3f}, gender {row['gender_accuracy']:.4f}; "
              f"MAE minus v3 {against_v3['age_mae']['difference']:+.3f} (95% paired {low:+.3f} to {high:+.3f})",
              flush=True)
    atomic_write_json(HERE / "soups.json", {
        "split": "val", "n": len(val), "input_px": SIZE, "reading": "median",
        "members": {name: {"checkpoint": str(path.relative_to(REPO)), "sha256": sha256_file(path)}
                    for name, path in MEMBERS.items()},
        "scores": results})


if __name__ == "__main__":
    main()
