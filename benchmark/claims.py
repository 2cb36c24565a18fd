"""The seeds' claims, each judged from the benchmark rows as holds / does not hold / not measured, with the
numbers behind it; and the seeds' own published figures, labelled with the data they were measured on."""
from __future__ import annotations

from edge_age.metrics import decided, difference_text, paired_on_shared_faces, with_interval

# The seeds' own numbers. Coursework: UTKFace 5,000-image subset, validation split. Paper: MORPH2.
SEED_NUMBERS = [
    {"source": "coursework report", "model": "custom_cnn (model A)", "data": "UTKFace, 5,000-image subset, validation",
     "age_mae": 8.65, "gender_accuracy": 0.8470},
    {"source": "coursework report", "model": "vgg16_transfer (model B)", "data": "UTKFace, 5,000-image subset, validation",
     "age_mae": 8.89, "gender_accuracy": 0.8220},
    {"source": "Symmetry 2020 paper", "model": "ma_sfv2 (MA-SFV2)", "data": "MORPH2 (not available here)",
     "age_mae": 2.68, "gender_accuracy": None},
    {"source": "Symmetry 2020 paper", "model": "sfv2 (ShuffleNetV2)", "data": "MORPH2 (not available here)",
     "age_mae": 2.91, "gender_accuracy": None},
]

QUANTISATION_LIMITS = {"mae_change_years": 0.25, "gender_change_points": 1.0, "size_ratio_at_least": 3.5}
# Claim 5 needs a yardstick for "lightweight enough for a phone": one face at 30 frames/s on one core of this
# CPU (33 ms), in a file under 10 MB. A phone core is slower than this server core: the margin is reported.
PHONE_BUDGET = {"latency_ms": 1000 / 30, "size_mb": 10.0}
# The project's own targets for the phone model (issue 16), judged on the int8 TFLite file the Android demo ships.
# The latency yardstick is the coursework custom CNN's int8 TFLite (the app's model before the phone model), timed
# at one thread in the same run: ratios travel between machines, milliseconds do not.
PHONE_MODEL_TARGETS = {"age_mae_at_most": 4.5, "cs5_at_least": 0.68, "gender_accuracy_at_least": 0.945,
                       "size_mb_at_most": 5.0, "int8_mae_change_at_most": 0.1, "latency_vs_model_a_at_most": 2.0}


def _reference(rows: list[dict], family: str, fmt: str = "pytorch", precision: str = "fp32") -> dict | None:
    """The family's PyTorch row on the largest test set (then the lowest MAE): the model that represents it.
    With another format, that format's row chosen the same way."""
    candidates = [r for r in rows if r["family"] == family and r["format"] == fmt and r["precision"] == precision
                  and "age_mae" in r]
    if not candidates:
        return None
    return sorted(candidates, key=lambda r: (-r["n"], r["age_mae"]))[0]


def _row(rows: list[dict], model: str, fmt: str, precision: str) -> dict | None:
    return next((r for r in rows if r["model"] == model and r["format"] == fmt and r["precision"] == precision
                 and "age_mae" in r), None)


def _latency(row: dict | None, threads: str) -> float | None:
    return row["latency"].get(threads, {}).get("latency_ms_median") if row else None


def paired(first: dict | None, second: dict | None) -> dict | None:
    """First row minus second on the faces both were scored on (metrics.paired_on_shared_faces); None when either
    row kept no per-face answers or they share no face."""
    if not (first and second and first.get("answers") and second.get("answers")):
        return None
    return paired_on_shared_faces(first["answers"], second["answers"])


def _paired_evidence(first: dict, second: dict, metrics: tuple[str, ...] = ("age_mae",)) -> str:
    """'; paired on the 2000 faces both were scored on: MAE -1.19 y (95% paired -1.35 to -1.03) (each decided
    by this test set)', for the evidence of a claim that compares two models; empty when the rows kept no per-face
    answers."""
    difference = paired(first, second)
    if difference is None:
        return ""
    names = {"age_mae": "MAE", "cs5": "CS(5)", "gender_accuracy": "gender"}
    undecided = [names[m] for m in metrics if not decided(difference[m])]
    return (f"; paired on the {difference['n']} faces both were scored on: "
            + ", ".join(f"{names[m]} {difference_text(difference, m)}" for m in metrics)
            + (f" ({', '.join(undecided)}: not decided by this test set, the interval holds 0)" if undecided
               else " (each decided by this test set)"))


def phone_target_rows(rows: list[dict], app_int8_sha256: str | None) -> tuple[dict | None, dict | None]:
    """The measured row of the app's int8 file and that of model A's int8 TFLite file (the latency yardstick of
    the phone model's targets); each None when this run did not measure it."""
    app = next((r for r in rows if app_int8_sha256 and r.get("sha256") == app_int8_sha256 and "age_mae" in r), None)
    cnn = _reference(rows, "custom_cnn")
    # Model A's checkpoint may be absent (an export folder copied away from its run): its int8 file still times
    model_a = _row(rows, cnn["model"], "tflite", "int8") if cnn else _reference(rows, "custom_cnn", "tflite", "int8")
    return app, model_a


def judge_claims(rows: list[dict], threads: str, app_int8_sha256: str | None = None,
                 app_in_turns: dict | None = None) -> list[dict]:
    """The coursework's and the paper's claims, then the phone model's targets, each judged from this run's rows.
    ``threads`` picks the latency column used for ratios; ``app_int8_sha256`` names the app's int8 file;
    ``app_in_turns`` is that file timed in turns with model A's (timing.py --against), the latency ratio judged
    when given."""
    cnn, vgg, ma, sfv2, l1 = (_reference(rows, f) for f in ("custom_cnn", "vgg16_transfer", "ma_sfv2", "sfv2", "ma_sfv2-l1"))
    return [_a_beats_b(cnn, vgg), _ma_is_lightweight(ma, [m for m in (cnn, vgg) if m], threads),
            _ablation(3, "Paper: mixed attention lowers MAE against plain ShuffleNetV2 (trained the same way).", ma,
                      sfv2, "SFV2"),
            _ablation(4, "Paper: classification + regression loss beats L1 regression alone (trained the same way).",
                      ma, l1, "L1 regression alone"),
            _phone_budget(rows, ma, cnn, threads), _quantisation(rows, threads),
            _phone_model_targets(rows, app_int8_sha256, app_in_turns)]


def _claim(number: int, text: str, verdict: str, evidence: str) -> dict:
    return {"claim": number, "text": text, "verdict": verdict, "evidence": evidence}


def _a_beats_b(cnn: dict | None, vgg: dict | None) -> dict:
    text = "Coursework: the custom CNN beats the VGG16 transfer model on both gender accuracy and age MAE."
    if not (cnn and vgg):
        return _claim(1, text, "not measured", "needs a custom_cnn and a vgg16_transfer export")
    holds = cnn["age_mae"] < vgg["age_mae"] and cnn["gender_accuracy"] > vgg["gender_accuracy"]
    note = "" if cnn["n"] == vgg["n"] else f" (test sets differ: {cnn['n']} vs {vgg['n']} images)"
    return _claim(1, text, "holds" if holds else "does not hold",
                  f"custom CNN ({cnn['model']}) MAE {cnn['age_mae']:.2f}, gender {cnn['gender_accuracy']:.1%}; VGG16 "
                  f"({vgg['model']}) MAE {vgg['age_mae']:.2f}, gender {vgg['gender_accuracy']:.1%}{note}"
                  + _paired_evidence(cnn, vgg, ("age_mae", "gender_accuracy")))


def _ma_is_lightweight(ma: dict | None, others: list[dict], threads: str) -> dict:
    text = "Paper: MA-SFV2 is lightweight (parameters, size, latency) while at least as accurate as the others."
    if not (ma and others):
        return _claim(2, text, "not measured", "needs an ma_sfv2 export and at least one of custom_cnn / vgg16_transfer")
    parts, lighter, accurate = [], True, True
    for other in others:
        ratio_p = other["parameters"] / ma["parameters"]
        ratio_s = other["size_mb"] / ma["size_mb"]
        lat_o, lat_m = _latency(other, threads), _latency(ma, threads)
        ratio_l = lat_o / lat_m if lat_o and lat_m else None
        lighter &= ratio_p > 1 and ratio_s > 1 and (ratio_l is None or ratio_l > 1)
        accurate &= ma["age_mae"] <= other["age_mae"]
        parts.append(f"vs {other['family']}: {_times(ratio_p, 'fewer', 'more')} parameters, "
                     f"{_times(ratio_s, 'smaller', 'larger')} checkpoint, "
                     + (f"{_times(ratio_l, 'faster', 'slower')} at {threads} thread(s)" if ratio_l else "latency not measured")
                     + f", MAE {ma['age_mae']:.2f} vs {other['age_mae']:.2f}" + _paired_evidence(ma, other))
    return _claim(2, text, "holds" if lighter and accurate else "does not hold",
                  f"MA-SFV2 ({ma['model']}, {ma['parameters']:,} parameters, {ma['gflops']:.2f} GFLOPs at "
                  f"{ma['input_size']} px) " + "; ".join(parts))


def _ablation(number: int, text: str, ma: dict | None, other: dict | None, what: str) -> dict:
    if not (ma and other):
        return _claim(number, text, "not measured", f"needs MA-SFV2 and {what} exports (`edge-age pipeline --ablation`)")
    same = _comparable(ma["recipe_summary"]) == _comparable(other["recipe_summary"])
    return _claim(number, text, "holds" if ma["age_mae"] < other["age_mae"] else "does not hold",
                  f"MA-SFV2 MAE {ma['age_mae']:.2f} vs {what} {other['age_mae']:.2f} ({ma['age_mae'] - other['age_mae']:+.2f} "
                  f"years; one seed each, seed-to-seed spread not measured)" + _paired_evidence(ma, other)
                  + ("" if same else "; WARNING: the two were not trained with the same recipe settings"))


def _phone_budget(rows: list[dict], ma: dict | None, cnn: dict | None, threads: str) -> dict:
    text = ("Paper's conclusion: MA-SFV2 is still not lightweight enough for phones (judged by int8 TFLite against "
            f"one face at 30 fps on one core here, {PHONE_BUDGET['latency_ms']:.0f} ms, and a file under "
            f"{PHONE_BUDGET['size_mb']:.0f} MB).")
    # The smallest TFLite int8 file that still gives the model's answers (passed parity) is the phone candidate.
    int8 = next((r for precision in ("int8", "int8-dynamic") if ma
                 for r in [_row(rows, ma["model"], "tflite", precision)] if r and r["status"] == "pass"), None)
    fp32 = _row(rows, ma["model"], "tflite", "fp32") if ma else None
    if not (int8 and fp32):
        return _claim(5, text, "not measured",
                      "needs MA-SFV2's fp32 TFLite file and an int8 TFLite file that passed parity")
    lat8, lat32 = _latency(int8, threads), _latency(fp32, threads)
    fits = int8["size_mb"] < PHONE_BUDGET["size_mb"] and lat8 is not None and lat8 < PHONE_BUDGET["latency_ms"]
    cnn8 = _row(rows, cnn["model"], "tflite", int8["precision"]) if cnn else None
    versus_a = (f"; model A {int8['precision']} TFLite {cnn8['size_mb']:.2f} MB, {_latency(cnn8, threads):.1f} ms"
                if cnn8 else "")
    skipped = _row(rows, ma["model"], "tflite", "int8")
    why = (f" (the full-int8 file failed parity, so the {int8['precision']} file is judged)"
           if skipped and skipped is not int8 else "")
    return _claim(5, text, "does not hold" if fits else "holds",
                  f"{int8['precision']} TFLite {int8['size_mb']:.2f} MB, {lat8:.1f} ms at {threads} thread(s){why}; fp32 "
                  f"TFLite {fp32['size_mb']:.2f} MB, {lat32:.1f} ms ({fp32['size_mb'] / int8['size_mb']:.1f}x smaller, "
                  f"{_times(lat32 / lat8, 'faster', 'slower')} as {int8['precision']}){versus_a}")


def _quantisation(rows: list[dict], threads: str) -> dict:
    text = (f"Quantisation: int8 keeps MAE within {QUANTISATION_LIMITS['mae_change_years']} years and gender accuracy "
            f"within {QUANTISATION_LIMITS['gender_change_points']:.0f} point while shrinking size about 4x (at least "
            f"{QUANTISATION_LIMITS['size_ratio_at_least']}x).")
    checks = []
    for row in rows:
        if not row["precision"].startswith("int8") or "age_mae" not in row or "mae_change_vs_pytorch" not in row:
            continue
        float_row = _row(rows, row["model"], row["format"], "fp32")
        if not float_row:
            continue
        size_ratio = float_row["size_mb"] / row["size_mb"]
        lat_f, lat_q = _latency(float_row, threads), _latency(row, threads)
        ok = (abs(row["mae_change_vs_pytorch"]) <= QUANTISATION_LIMITS["mae_change_years"]
              and abs(row["gender_change_points_vs_pytorch"]) <= QUANTISATION_LIMITS["gender_change_points"]
              and size_ratio >= QUANTISATION_LIMITS["size_ratio_at_least"])
        speed = _times(lat_f / lat_q, "faster", "slower") + " here" if lat_f and lat_q else "not measured"
        change = (difference_text(row["paired_vs_pytorch"], "age_mae") if row.get("paired_vs_pytorch")
                  else f"{row['mae_change_vs_pytorch']:+.2f} y")
        checks.append((ok, f"{row['model']} {row['format']} {row['precision']}: MAE {change}, "
                           f"gender {row['gender_change_points_vs_pytorch']:+.1f} pt, {size_ratio:.1f}x smaller, "
                           f"latency {speed}"))
    if not checks:
        return _claim(6, text, "not measured", "needs int8 and fp32 files of the same format")
    held = sum(ok for ok, _ in checks)
    verdict = "holds" if held == len(checks) else ("does not hold" if held == 0 else f"holds for {held} of {len(checks)}")
    return _claim(6, text, verdict, "; ".join(evidence for _, evidence in checks))


def _phone_model_targets(rows: list[dict], app_sha256: str | None, in_turns: dict | None) -> dict:
    t = PHONE_MODEL_TARGETS
    text = (f"Project target (issue 16): the int8 TFLite in the Android demo has age MAE <= {t['age_mae_at_most']}, "
            f"CS(5) >= {t['cs5_at_least']}, gender accuracy >= {100 * t['gender_accuracy_at_least']:.1f}%, a file "
            f"<= {t['size_mb_at_most']:.0f} MB, MAE within {t['int8_mae_change_at_most']} years of its float model, "
            f"and one-thread latency at most {t['latency_vs_model_a_at_most']:.0f}x model A's int8 TFLite here.")
    if app_sha256 is None:
        return _claim(7, text, "not measured", "no int8 model file in the Android app's manifest")
    app, model_a = phone_target_rows(rows, app_sha256)
    if app is None:
        return _claim(7, text, "not measured", f"the app's int8 file (sha256 {app_sha256[:12]}...) is not among the "
                                               "measured files: benchmark the export folder it was installed from")
    checks = [_against_target(app, "age_mae", "MAE", ".3f", "<=", t["age_mae_at_most"]),
              _against_target(app, "cs5", "CS(5)", ".3f", ">=", t["cs5_at_least"]),
              _against_target(app, "gender_accuracy", "gender", ".2%", ">=", t["gender_accuracy_at_least"]),
              (app["size_mb"] <= t["size_mb_at_most"], f"{app['size_mb']:.2f} MB (<= {t['size_mb_at_most']:.0f})")]
    change = app.get("mae_change_vs_pytorch")
    shown = (difference_text(app["paired_vs_pytorch"], "age_mae", ".3f") if app.get("paired_vs_pytorch")
             else f"{change:+.3f} y" if change is not None else None)
    checks.append((change is not None and abs(change) <= t["int8_mae_change_at_most"],
                   f"MAE {shown} against its PyTorch model (within {t['int8_mae_change_at_most']})"
                   if change is not None else "MAE against its float model not measured (no PyTorch reference)"))
    checks.append(_latency_against_model_a(app, model_a, in_turns, t["latency_vs_model_a_at_most"]))
    met = sum(ok for ok, _ in checks)
    verdict = "holds" if met == len(checks) else ("does not hold" if met == 0 else f"holds for {met} of {len(checks)}")
    return _claim(7, text, verdict, f"{app['model']} tflite int8 on {app['n']} images: " +
                  "; ".join(f"{evidence}: {'met' if ok else 'missed'}" for ok, evidence in checks))


def _latency_against_model_a(app: dict, model_a: dict | None, in_turns: dict | None, at_most: float):
    """The app file's one-thread latency as a multiple of model A's: timed in turns (steady on a machine whose
    speed drifts; the median over several processes) when that was measured, else the ratio of the two rows'
    separate medians."""
    mine, theirs = _latency(app, "1"), _latency(model_a, "1")
    separate = (f"{mine:.2f} ms at 1 thread against model A's {theirs:.2f} ms = {mine / theirs:.2f}x"
                if mine and theirs else None)
    if in_turns:
        ratio, per_process = in_turns["ratio"], in_turns["ratio_per_process"]
        return ratio <= at_most, (
            f"{in_turns['latency_ms_median']:.2f} ms at 1 thread against model A's "
            f"{in_turns['reference_latency_ms_median']:.2f} ms timed in turns = {ratio:.2f}x (median of "
            f"{len(per_process)} processes, {min(per_process):.2f}-{max(per_process):.2f}x"
            + (f", timed apart {mine / theirs:.2f}x" if separate else "") + f") (<= {at_most:.0f}x)")
    if separate:
        return mine / theirs <= at_most, f"{separate} (<= {at_most:.0f}x)"
    return False, "latency against model A not measured (needs both int8 TFLite files timed at 1 thread)"


def _against_target(row: dict, metric: str, label: str, spec: str, relation: str, target: float) -> tuple[bool, str]:
    """Whether a row's accuracy figure meets its target, with the figure's 95% interval and where the target lies
    against it: a target inside the interval is one the test set is too small to decide either way."""
    value = row[metric]
    met = value <= target if relation == "<=" else value >= target
    interval = row.get("ci95", {}).get(metric)
    where = ""
    if interval:
        where = ", inside" if interval[0] <= target <= interval[1] else ", outside"
        where += " the 95% interval"
    return met, f"{label} {with_interval(row, metric, spec)} ({relation} {format(target, spec)}{where})"


def _times(ratio: float, better: str, worse: str) -> str:
    """2.0 -> '2.00x faster'; 0.5 -> '2.00x slower' (ratios read the right way round)."""
    return f"{ratio:.2f}x {better}" if ratio >= 1 else f"{1 / ratio:.2f}x {worse}"


def _comparable(summary: dict) -> dict:
    """A recipe summary without what an ablation changes on purpose (attention, age output, loss)."""
    options = {k: v for k, v in (summary.get("model_options") or {}).items() if k not in ("attention", "age_output")}
    return {**{k: v for k, v in summary.items() if k != "loss"}, "model_options": options}


def recipe_summary(recipe: dict) -> dict:
    """The recipe settings that must match for two runs to count as 'trained the same way'."""
    return {"img_size": recipe.get("img_size"), "batch_size": recipe.get("batch_size"),
            "augmentation": recipe.get("augmentation"), "subset": recipe.get("subset"),
            "epochs": [p.get("epochs") for p in recipe.get("phases", [])],
            "lr": [p.get("lr") for p in recipe.get("phases", [])],
            "model_options": recipe.get("model_options"), "loss": recipe.get("loss")}
