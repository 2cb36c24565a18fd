import numpy as np
import pytest

from edge_age.metrics import (age_mae, bootstrap_intervals, cumulative_scores, decided, gender_accuracy,
                              paired_differences, summarize, with_interval)


def test_age_mae_by_hand():
    assert age_mae([10, 20, 30], [12, 20, 25]) == pytest.approx((2 + 0 + 5) / 3)


def test_cumulative_scores_by_hand():
    # absolute errors 0, 1.5, 3, 11
    scores = cumulative_scores([20, 21.5, 27, 41], [20, 20, 30, 30])
    assert len(scores) == 11
    assert scores[0] == 0.25 and scores[1] == 0.25 and scores[2] == 0.5
    assert scores[3] == 0.75 and scores[10] == 0.75


def test_gender_accuracy_by_hand():
    assert gender_accuracy([0.9, 0.2, 0.6, 0.4], [1, 0, 0, 0]) == 0.75


def test_summarize_keys():
    summary = summarize([20, 30], [22, 30], [0.7, 0.1], [1, 1])
    assert summary["n"] == 2 and summary["age_mae"] == 1.0 and summary["cs5"] == 1.0
    assert summary["gender_accuracy"] == 0.5 and summary["cs"]["0"] == 0.5


def _answers(n: int, seed: int = 0):
    """n answers of a model with a 6-year age error and 94% gender accuracy."""
    rng = np.random.default_rng(seed)
    true_ages, true_genders = rng.integers(1, 90, n), rng.integers(0, 2, n)
    right = rng.random(n) < 0.94
    female_probabilities = np.where(right, true_genders, 1 - true_genders) * 0.8 + 0.1
    return true_ages + rng.normal(0, 6, n), true_ages, female_probabilities, true_genders


def test_bootstrap_intervals_match_the_standard_error_and_repeat_exactly():
    predicted, ages, female, genders = _answers(2000)
    intervals = bootstrap_intervals(predicted, ages, female, genders)
    assert intervals == bootstrap_intervals(predicted, ages, female, genders)  # seeded: a report can be remade
    summary = summarize(predicted, ages, female, genders)
    errors = np.abs(predicted - ages)
    # A 95% interval of a mean spans about 2 x 1.96 standard errors
    expected = {"age_mae": errors.std() / np.sqrt(2000),
                "cs5": np.sqrt(summary["cs5"] * (1 - summary["cs5"]) / 2000),
                "gender_accuracy": np.sqrt(summary["gender_accuracy"] * (1 - summary["gender_accuracy"]) / 2000)}
    for metric, (low, high) in intervals.items():
        assert low < summary[metric] < high, metric
        assert high - low == pytest.approx(2 * 1.96 * expected[metric], rel=0.15), metric
    # Four times the faces, half the width
    wide, narrow = intervals["age_mae"], bootstrap_intervals(*_answers(8000))["age_mae"]
    assert (narrow[1] - narrow[0]) == pytest.approx((wide[1] - wide[0]) / 2, rel=0.15)


def test_a_model_with_one_error_everywhere_has_no_spread():
    intervals = bootstrap_intervals([23, 33, 43], [20, 30, 40], [0.9, 0.1, 0.8], [1, 0, 1])
    assert intervals == {"age_mae": [3.0, 3.0], "cs5": [1.0, 1.0], "gender_accuracy": [1.0, 1.0]}


def test_intervals_are_only_computed_when_asked_and_printed_beside_their_figure():
    answers = _answers(500)
    assert "ci95" not in summarize(*answers)
    summary = summarize(*answers, intervals=True)
    low, high = summary["ci95"]["age_mae"]
    assert with_interval(summary, "age_mae") == f"{summary['age_mae']:.2f} ({low:.2f}-{high:.2f})"
    assert with_interval({"age_mae": 4.5}, "age_mae", ".3f") == "4.500"


def test_paired_differences_cancel_what_two_models_share():
    """Two models whose errors mostly agree: the paired interval of their difference is far narrower than either
    model's own, holds the true difference, and a model against itself differs by exactly nothing."""
    predicted, ages, female, genders = _answers(2000)
    rng = np.random.default_rng(5)
    better = ages + (predicted - ages) * 0.9 + rng.normal(0, 0.3, len(ages))  # 10% less error, much alike
    first, second = {"age": better, "female_prob": female}, {"age": predicted, "female_prob": female}
    difference = paired_differences(first, second, ages, genders)
    expected = age_mae(better, ages) - age_mae(predicted, ages)
    assert difference["age_mae"]["difference"] == pytest.approx(expected)
    low, high = difference["age_mae"]["ci95"]
    assert low < expected < high < 0 and decided(difference["age_mae"])
    own_low, own_high = bootstrap_intervals(predicted, ages, female, genders)["age_mae"]
    assert high - low < (own_high - own_low) / 3
    assert not decided(difference["gender_accuracy"])  # the same gender answers: difference 0, interval [0, 0]
    itself = paired_differences(second, second, ages, genders)
    assert all(d == {"difference": 0.0, "ci95": [0.0, 0.0]} for d in itself.values())
