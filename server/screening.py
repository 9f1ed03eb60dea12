"""Every train reply is checked before any part of it can reach an average.

An honest site (``client.app.client_app.train_content``) sends one ArrayRecord ``arrays`` holding
exactly the tensors its objective trains (``shared_model.config.trained_keys``), each with the
global tensor's shape and dtype and finite values, and one MetricRecord ``metrics`` whose
``num-examples`` is a whole number no larger than the count the site declared before round 1
(``client.app.site.declaration``). Its update (reply − global over those tensors) is of the size
local training makes: the bound is ``max-update-rms`` × √(number of trained values), i.e. a
root-mean-square change per value, so one setting serves every model size.

A reply failing a check is rejected: the site's round status becomes ``rejected: <check>``
and the round goes on with the others (``server.strategy.ObjectiveRounds.screen``). Screening
stops malformed and grossly out-of-range replies; a well-formed hostile update under the bound
is what the robust aggregators (``server.aggregation``) are for.

Under SecAgg+ the server never sees one site's update, only their sum, so nothing here applies:
the sites check their own scaled update against the protocol's range (``client.app.secagg``) and the
server can check only what travels in clear (the metrics) and the unmasked sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.app import RecordDict

from shared_model.config import trained_keys
from shared_model.run_config import RunConfig

# Honest updates of the default simulation (`m3fed sim`, tiny preset, seed 0) measured a root-mean-square
# change per value of at most 0.0026 in contrastive rounds (L2 norm 3.8 over 2.19 M values) and 0.047
# in report-generation rounds (63.9 over 1.85 M, the decoder's first round from random weights):
# 1.0 leaves a margin of 20x over the largest, and an update scaled by 1e6 is far above it.
DEFAULT_MAX_UPDATE_RMS = RunConfig.max_update_rms


@dataclass(frozen=True, kw_only=True)
class ScreeningConfig:
    """Run config ``max-update-rms`` (0: no bound on the update's size; the other checks stay)."""

    max_update_rms: float = DEFAULT_MAX_UPDATE_RMS

    def __post_init__(self) -> None:
        if not (self.max_update_rms >= 0 and math.isfinite(self.max_update_rms)):
            raise ValueError(f"--max-update-rms / max-update-rms must be >= 0, got {self.max_update_rms}")

    @classmethod
    def from_run(cls, run: RunConfig) -> "ScreeningConfig":
        return cls(max_update_rms=run.max_update_rms)


@dataclass(frozen=True)
class Verdict:
    problem: str | None  # None: the reply may be averaged
    examples: int = 0
    update_norm: float | None = None


def examples_of(content: RecordDict) -> int | str:
    """The reply's ``num-examples`` as an int, or why it is not one."""
    metrics = content.metric_records.get("metrics")
    value = None if metrics is None else metrics.get("num-examples")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value):
        return f"num-examples: {value!r} is not a whole number"
    if value < 0:
        return f"num-examples: {int(value)} is negative"
    return int(value)


def screen_reply(content: RecordDict, *, start: dict[str, np.ndarray], objective: str, declared: int | None,
                 cfg: ScreeningConfig) -> Verdict:
    """Whether one train reply may be averaged; ``start``: the global model sent this round;
    ``declared``: the site's declared example count for ``objective`` (None: not checked)."""
    if set(content.array_records) != {"arrays"} or set(content.metric_records) != {"metrics"}:
        return Verdict("layout: a reply holds one ArrayRecord 'arrays' and one MetricRecord 'metrics'")
    n = examples_of(content)
    if isinstance(n, str):
        return Verdict(n)
    arrays = content["arrays"]
    if n == 0:  # no data for this objective, or a refusal: nothing to average
        return Verdict("num-examples: 0, yet the reply carries an update" if len(arrays) else None)
    if declared is not None and n > declared:
        return Verdict(f"num-examples: {n} is more than the {declared} training examples the site declared "
                       "before round 1" if declared else
                       f"num-examples: {n}, and the site declared no training examples for {objective} before round 1")
    expected = trained_keys(start, objective)
    missing, extra = [k for k in expected if k not in arrays], sorted(set(arrays) - set(expected))
    if extra:
        return Verdict(f"unexpected tensor '{extra[0]}' (a {objective} round does not train it)")
    if missing:
        return Verdict(f"missing tensors: {len(missing)} of the {len(expected)} trained, e.g. '{missing[0]}'")
    squares, size = 0.0, 0
    for key in expected:
        try:
            value = arrays[key].numpy()
        except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the reply is unreadable
            return Verdict(f"unreadable tensor '{key}' ({type(exc).__name__})")
        ref = start[key]
        if value.shape != ref.shape:
            return Verdict(f"wrong shape {value.shape} of '{key}' (the model's: {ref.shape})")
        if value.dtype != ref.dtype:
            return Verdict(f"wrong dtype {value.dtype} of '{key}' (the model's: {ref.dtype})")
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            return Verdict(f"non-finite values (NaN or inf) in '{key}'")
        squares += float(np.sum((value.astype(np.float64) - ref.astype(np.float64)) ** 2))
        size += value.size
    norm = math.sqrt(squares)
    bound = cfg.max_update_rms * math.sqrt(size)
    if cfg.max_update_rms and norm > bound:
        return Verdict(f"update norm {norm:.4g} above the bound {bound:.4g} (max-update-rms "
                       f"{cfg.max_update_rms:g} over {size} values)", update_norm=norm)
    return Verdict(None, n, norm)
