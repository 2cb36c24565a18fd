import pytest

from edge_age.metrics import age_mae, cumulative_scores, gender_accuracy, summarize


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
