"""The metrics every stage reports: age MAE, cumulative score CS(e), gender accuracy."""
from __future__ import annotations

import numpy as np

CS_MAX_ERROR = 10  # CS(e) for e = 0..10 years, as in the paper's Figure 12
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


def summarize(predicted_ages, true_ages, female_probabilities, true_genders) -> dict:
    """All metrics of one evaluation, JSON-ready."""
    scores = cumulative_scores(predicted_ages, true_ages)
    return {
        "n": int(len(np.asarray(true_ages))),
        "age_mae": age_mae(predicted_ages, true_ages),
        "cs": {str(e): s for e, s in enumerate(scores)},
        "cs5": scores[5],
        "gender_accuracy": gender_accuracy(female_probabilities, true_genders),
        "bands": by_age_band(predicted_ages, true_ages, female_probabilities, true_genders),
    }
