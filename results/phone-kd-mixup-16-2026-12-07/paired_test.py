"""Phone v3 (this trial, adopted) against phone v2 on the test split, face by face, both checkpoints in PyTorch:
the paired difference of age MAE, CS(5) and gender accuracy with 95% paired intervals. Run from the repo root:
`python results/phone-kd-mixup-16-2026-12-07/paired_test.py` (writes paired_test.json beside it)."""
import json
from edge_age.checkpoint import load_model
from edge_age.data import apply_split, decoded_cache, load_labelled, load_split, resolve_data_dir
from edge_age.inference import predict
from edge_age.metrics import paired_differences, difference_text
runs = {"v3": "results/runs-cpu-2026-12-07/efficientnet_lite0-phone-v3", "v2": "results/runs-cpu-2026-12-04/efficientnet_lite0-phone-v2"}
test = decoded_cache(apply_split(load_labelled(resolve_data_dir(None)), load_split(runs["v2"] + "/split.json"), "test"), 128, verbose=False)
answers = {}
for name, run in runs.items():
    model, _ = load_model(run + "/best.pt")
    out = predict(model, test.pixels)
    answers[name] = {"age": out["age"], "female_prob": out["gender_prob"]}
d = paired_differences(answers["v3"], answers["v2"], test.data.ages, test.data.genders)
print(len(test), {m: difference_text(d, m) for m in d})
print(json.dumps(d))
with open("results/phone-kd-mixup-16-2026-12-07/paired_test.json", "w") as handle:
    json.dump({"n": len(test), "first": runs["v3"], "second": runs["v2"], "first_minus_second": d}, handle, indent=2)
