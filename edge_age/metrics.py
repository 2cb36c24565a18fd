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


def bootstrap_intervals(predicted_ages, true_ages, female_probabilities, true_genders,
                        resamples: int = INTERVAL_RESAMPLES, seed: int = 0) -> dict:
    """95% percentile-bootstrap intervals of age MAE, CS(5) and gender accuracy, {metric: [low, high]}. The faces
    are drawn again with replacement: the spread is how far a figure could move on another test set of the same
    size from the same population, so a target inside the interval is one this test set cannot decide."""
    errors = np.abs(np.asarray(predicted_ages, float) - np.asarray(true_ages, float))
    correct = (np.asarray(female_probabilities, float) > 0.5).astype(int) == np.asarray(true_genders, int)
    rng = np.random.default_rng(seed)
    draws = {"age_mae": [], "cs5": [], "gender_accuracy": []}
    for start in range(0, resamples, 100):  # 100 resamples at a time keeps memory flat on large test sets
        picks = rng.integers(0, len(errors), size=(min(100, resamples - start), len(errors)))
        draws["age_mae"].append(errors[picks].mean(axis=1))
        draws["cs5"].append((errors[picks] <= 5).mean(axis=1))
        draws["gender_accuracy"].append(correct[picks].mean(axis=1))
    return {metric: [float(bound) for bound in np.percentile(np.concatenate(values), [2.5, 97.5])]
            for metric, values in draws.items()}


def with_interval(summary: dict, metric: str, spec: str = ".2f") -> str:
    """'4.52 (4.36-4.69)': a metric of a summary and, when it has one, its 95% interval."""
    interval = summary.get("ci95", {}).get(metric)
    value = format(summary[metric], spec)
    return f"{value} ({format(interval[0], spec)}-{format(interval[1], spec)})" if interval else value


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
