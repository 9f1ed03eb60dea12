"""The paired bootstrap behind 'federated − pooled (95% interval)'."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sim.significance import _auc_per_draw, paired_auc_difference


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = {"A": (rng.random(n) < 0.3).astype(float), "B": (rng.random(n) < 0.5).astype(float)}
    labels["B"][:10] = -1  # uncertain: left out of B only
    labels["B"][10:15] = np.nan  # not mentioned: a negative
    good = {k: (v == 1) + rng.normal(0, 0.8, n) for k, v in labels.items()}
    noise = {k: rng.normal(0, 1, n) for k in labels}
    return labels, good, noise


def test_point_estimate_is_the_difference_of_sklearn_macro_aucs():
    labels, good, noise = _data()

    def macro(scores):
        return np.mean([roc_auc_score(v[v != -1] == 1, scores[k][v != -1]) for k, v in labels.items()])
    result = paired_auc_difference(good, noise, labels, resamples=200)
    assert result["difference"] == pytest.approx(macro(good) - macro(noise), abs=1e-12)
    low, high = result["ci95"]
    assert 0 < low < result["difference"] < high  # a clearly better model: the interval excludes 0


def test_a_draw_with_repeated_images_scores_as_sklearn_on_the_drawn_images():
    rng = np.random.default_rng(3)
    score, target = rng.normal(size=50).round(1), rng.random(50) < 0.4  # rounding makes ties
    draw = rng.integers(0, 50, 50)
    counts = np.bincount(draw, minlength=50)[None].astype(float)
    assert _auc_per_draw(score, target, counts)[0] == pytest.approx(roc_auc_score(target[draw], score[draw]))


def test_the_same_model_differs_by_exactly_zero_and_two_noise_models_straddle_zero():
    labels, good, noise = _data(seed=1)
    assert paired_auc_difference(good, good, labels, resamples=100) == {"difference": 0.0, "ci95": [0.0, 0.0],
                                                                        "resamples": 100}
    other = {k: np.random.default_rng(9).normal(0, 1, len(v)) for k, v in labels.items()}
    low, high = paired_auc_difference(noise, other, labels, resamples=500)["ci95"]
    assert low < 0 < high


def test_findings_with_one_class_are_left_out_and_nothing_scorable_gives_none():
    labels, good, noise = _data()
    only_negative = {**labels, "C": np.zeros(200)}
    scores = {**good, "C": np.zeros(200)}
    assert (paired_auc_difference(scores, {**noise, "C": np.ones(200)}, only_negative, resamples=50)
            == paired_auc_difference(good, noise, labels, resamples=50))
    assert paired_auc_difference({}, {}, {"C": np.zeros(5)})["difference"] is None
