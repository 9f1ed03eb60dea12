"""How sure a federated-vs-baseline AUC difference is: a paired bootstrap over the test images.

Both models are scored on the same test images, so each resample draws images (with
replacement) once and scores both models on that draw; the spread of the differences is what
the test split's size alone allows. It does not include how much either model would move with
another training seed (see BENCHMARKS.md: about ±0.03 on the default job), so a difference
whose interval excludes 0 can still change sign with the seed.
"""
from __future__ import annotations

import numpy as np

from shared_model.evaluate import scorable


def _pairwise(score: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(positives × negatives): 1 where the positive scores higher, ½ on a tie (Mann–Whitney)."""
    pos, neg = score[target][:, None], score[~target][None, :]
    return (pos > neg) + 0.5 * (pos == neg)


def _auc_per_draw(score: np.ndarray, target: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC of every draw: an image drawn k times counts k times on its side of every pair."""
    c_pos, c_neg = counts[:, target], counts[:, ~target]
    pairs = ((c_pos @ _pairwise(score, target)) * c_neg).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pairs / (c_pos.sum(1) * c_neg.sum(1))  # NaN where a draw lacks one class


def paired_auc_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                          *, resamples: int = 1000, seed: int = 0) -> dict:
    """Macro AUC of model ``a`` minus model ``b`` (per-finding image scores), with a 95% interval.

    Labels as in ``shared_model.evaluate.zero_shot_auc``: 1 positive, 0 or blank negative, -1 left
    out; findings with a single class on the whole split are left out. In a draw, findings that
    lose a class are left out of that draw's macro average.
    """
    labels = scorable(labels)
    if not labels:
        return {"difference": None, "ci95": None, "resamples": 0}
    n = len(next(iter(labels.values())))
    rng = np.random.default_rng(seed)
    counts = np.stack([np.ones(n, dtype=np.int64)] +
                      [np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(np.float64)
    diffs = []
    for name, values in labels.items():
        usable = values != -1
        target = values[usable] == 1
        diffs.append(_auc_per_draw(a[name][usable], target, counts[:, usable])
                     - _auc_per_draw(b[name][usable], target, counts[:, usable]))
    macro = np.nanmean(np.stack(diffs), axis=0)  # row 0 is the split itself
    low, high = np.nanpercentile(macro[1:], [2.5, 97.5])
    return {"difference": float(macro[0]), "ci95": [float(low), float(high)], "resamples": resamples}
