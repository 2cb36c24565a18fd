"""The metrics every stage reports: age MAE, cumulative score CS(e), gender accuracy."""
from __future__ import annotations

import numpy as np

CS_MAX_ERROR = 10  # CS(e) for e = 0..10 years, as in the paper's Figure 12
INTERVAL_RESAMPLES = 2000  # bootstrap resamples behind each 95% interval; seeded, so a report is reproducible
# Age bands of the per-band report: children, teens, the crowded twenties and thirties, middle and old age.
AGE_BANDS = ((0, 12), (13, 19), (20, 29), (30, 39), (40, 59), (60, 200))


def band_name(low: int, high: int) -> str:
    return f"{low}+" if high >= 200 else f"{low}-{high}"


def age_mae(predicted_ages, true_ages) -> float:
    """Mean absolute error in years."""
    predicted_ages, true_ages = np.asarray(predicted_ages, float), np.asarray(true_ages, float)
    return float(np.abs(predicted_ages - true_ages).mean())


def cumulative_scores(predicted_ages, true_ages, max_error: int = CS_MAX_ERROR) -> list[float]:
    """CS(e) for e = 0..max_error: the fraction of faces whose absolute age error is at most e years."""
    errors = np.abs(np.asarray(predicted_ages, float) - np.asarray(true_ages, float))
    return [float((errors <= e).mean()) for e in range(max_error + 1)]


def gender_accuracy(female_probabilities, true_genders) -> float:
    """Fraction right when P(female) > 0.5 is called female (1) and the rest male (0)."""
    predicted = (np.asarray(female_probabilities, float) > 0.5).astype(int)
    return float((predicted == np.asarray(true_genders, int)).mean())


def by_age_band(predicted_ages, true_ages, female_probabilities, true_genders) -> dict:
    """Per AGE_BANDS band (of the true age): n, age MAE and gender accuracy; bands without faces are left out."""
    predicted_ages, true_ages = np.asarray(predicted_ages, float), np.asarray(true_ages, float)
    female_probabilities, true_genders = np.asarray(female_probabilities, float), np.asarray(true_genders, int)
    bands = {}
    for low, high in AGE_BANDS:
        inside = (true_ages >= low) & (true_ages <= high)
        if inside.any():
            bands[band_name(low, high)] = {
                "n": int(inside.sum()), "age_mae": age_mae(predicted_ages[inside], true_ages[inside]),
                "gender_accuracy": gender_accuracy(female_probabilities[inside], true_genders[inside])}
    return bands


def _per_face(predicted_ages, true_ages, female_probabilities, true_genders) -> dict[str, np.ndarray]:
    """Each face's share of each metric: its age error, whether that is within 5 years, whether its gender is
    right. A metric is the mean of its column, so resampling faces resamples the metric."""
    errors = np.abs(np.asarray(predicted_ages, float) - np.asarray(true_ages, float))
    correct = (np.asarray(female_probabilities, float) > 0.5).astype(int) == np.asarray(true_genders, int)
    return {"age_mae": errors, "cs5": (errors <= 5).astype(float), "gender_accuracy": correct.astype(float)}


def _bootstrap(per_face: dict[str, np.ndarray], resamples: int, seed: int) -> dict:
    """95% percentile-bootstrap interval of each column's mean, {metric: [low, high]}; every column is resampled
    with the same draws of faces."""
    count = len(next(iter(per_face.values())))
    rng = np.random.default_rng(seed)
    draws = {metric: [] for metric in per_face}
    for start in range(0, resamples, 100):  # 100 resamples at a time keeps memory flat on large test sets
        picks = rng.integers(0, count, size=(min(100, resamples - start), count))
        for metric, values in per_face.items():
            draws[metric].append(values[picks].mean(axis=1))
    return {metric: [float(bound) for bound in np.percentile(np.concatenate(values), [2.5, 97.5])]
            for metric, values in draws.items()}


def bootstrap_intervals(predicted_ages, true_ages, female_probabilities, true_genders,
                        resamples: int = INTERVAL_RESAMPLES, seed: int = 0) -> dict:
    """95% percentile-bootstrap intervals of age MAE, CS(5) and gender accuracy, {metric: [low, high]}. The faces
    are drawn again with replacement: the spread is how far a figure could move on another test set of the same
    size from the same population, so a target inside the interval is one this test set cannot decide."""
    return _bootstrap(_per_face(predicted_ages, true_ages, female_probabilities, true_genders), resamples, seed)


def paired_differences(first: dict, second: dict, true_ages, true_genders, resamples: int = INTERVAL_RESAMPLES,
                       seed: int = 0) -> dict:
    """First minus second in age MAE, CS(5) and gender accuracy on the same faces, each with its 95% paired
    bootstrap interval: {metric: {"difference": d, "ci95": [low, high]}}. ``first`` and ``second`` hold "age" and
    "female_prob" per face, in the same face order. Both models are resampled with the same draws, so what the
    two get right or wrong together cancels: the interval of a difference is much narrower than either model's
    own, and a difference whose interval leaves out 0 is one this test set decides."""
    a = _per_face(first["age"], true_ages, first["female_prob"], true_genders)
    b = _per_face(second["age"], true_ages, second["female_prob"], true_genders)
    per_face = {metric: a[metric] - b[metric] for metric in a}
    intervals = _bootstrap(per_face, resamples, seed)
    return {metric: {"difference": float(values.mean()), "ci95": intervals[metric]}
            for metric, values in per_face.items()}


def paired_on_shared_faces(first: dict, second: dict) -> dict | None:
    """``paired_differences`` on the faces two sets of answers share (the same file with the same labels), plus
    "n", how many; None when they share none. Each set holds "faces" (file names), "age", "female_prob",
    "true_age" and "true_gender", one entry per face, in any order."""
    in_second = {face: i for i, face in enumerate(second["faces"])}
    shared = [(i, in_second[face]) for i, face in enumerate(first["faces"]) if face in in_second
              and first["true_age"][i] == second["true_age"][in_second[face]]
              and first["true_gender"][i] == second["true_gender"][in_second[face]]]
    if not shared:
        return None
    mine, theirs = (np.array(indices) for indices in zip(*shared))
    differences = paired_differences(
        {"age": np.asarray(first["age"])[mine], "female_prob": np.asarray(first["female_prob"])[mine]},
        {"age": np.asarray(second["age"])[theirs], "female_prob": np.asarray(second["female_prob"])[theirs]},
        np.asarray(first["true_age"])[mine], np.asarray(first["true_gender"])[mine])
    return {"n": len(shared), **differences}


def decided(difference: dict) -> bool:
    """Whether a paired difference's 95% interval leaves out zero (the test set tells the two apart)."""
    low, high = difference["ci95"]
    return low > 0 or high < 0


def with_interval(summary: dict, metric: str, spec: str = ".2f") -> str:
    """'4.52 (4.36-4.69)': a metric of a summary and, when it has one, its 95% interval."""
    interval = summary.get("ci95", {}).get(metric)
    value = format(summary[metric], spec)
    return f"{value} ({format(interval[0], spec)}-{format(interval[1], spec)})" if interval else value


# How each metric's difference reads: format, scale and unit.
_DIFFERENCE_UNITS = {"age_mae": (".2f", 1, " y"), "cs5": (".3f", 1, ""), "gender_accuracy": (".1f", 100, " pt")}


def difference_text(difference: dict, metric: str, spec: str | None = None) -> str:
    """'-1.19 y (95% paired -1.35 to -1.03)': a paired difference and its interval."""
    default_spec, scale, unit = _DIFFERENCE_UNITS[metric]
    spec = spec or default_spec
    value, (low, high) = difference[metric]["difference"], difference[metric]["ci95"]
    return f"{scale * value:+{spec}}{unit} (95% paired {scale * low:+{spec}} to {scale * high:+{spec}})"


def shown_as_change(difference: dict, metric: str) -> bool:
    """Whether a difference is non-zero at the digits ``difference_text`` shows."""
    spec, scale, _ = _DIFFERENCE_UNITS[metric]
    return float(format(scale * difference[metric]["difference"], spec)) != 0


def summarize(predicted_ages, true_ages, female_probabilities, true_genders, intervals: bool = False) -> dict:
    """All metrics of one evaluation, JSON-ready; with ``intervals``, also their 95% bootstrap intervals ("ci95"),
    for figures that are published or judged against a target (a test split, a benchmark row)."""
    scores = cumulative_scores(predicted_ages, true_ages)
    summary = {
        "n": int(len(np.asarray(true_ages))),
        "age_mae": age_mae(predicted_ages, true_ages),
        "cs": {str(e): s for e, s in enumerate(scores)},
        "cs5": scores[5],
        "gender_accuracy": gender_accuracy(female_probabilities, true_genders),
        "bands": by_age_band(predicted_ages, true_ages, female_probabilities, true_genders),
    }
    if intervals:
        summary["ci95"] = bootstrap_intervals(predicted_ages, true_ages, female_probabilities, true_genders)
    return summary
