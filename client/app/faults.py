"""A faulty site on purpose: ``m3fed sim --poison-sites K --poison KIND`` (what the server's screening must stop).

The site trains honestly (and, under a privacy policy, records its spend in its ledger as usual);
only then is its reply spoiled, as a broken or hostile site would send it:

- ``nan`` / ``inf``: every value of one trained tensor non-finite;
- ``scale``: the whole update (trained − global) multiplied by 1e6;
- ``shape``: one trained tensor replaced by a shape-(1,) array, which NumPy would broadcast;
- ``weight``: ``num-examples`` 1e9, so that an example-weighted mean is this site's update.
"""
from __future__ import annotations

from shared_model.run_config import RunConfig

POISONS = ("nan", "inf", "scale", "shape", "weight")


def poison_of(run: RunConfig, index: int, global_round: int) -> str | None:
    """The kind of bad reply this simulated site sends this round, if any (run config ``poison-*``).

    Only simulated sites (``index`` >= 0, from ``partition-id``) can be told to misbehave: a
    deployed site never spoils its own replies, whatever the server's run config says.
    """
    if index < 0 or index not in run.poisoned or global_round < run.poison_round:
        return None
    if run.poison not in POISONS:
        raise ValueError(f"poison must be one of {', '.join(POISONS)}, got {run.poison!r}")
    return run.poison


def poisoned(kind: str, trained: dict, start: dict, n: int) -> tuple[dict, int]:
    """(arrays, num-examples) as the faulty site sends them; ``start``: the global values it was sent."""
    import torch  # here: SimConfig reads POISONS without torch

    if kind == "weight":
        return trained, 10**9
    out = dict(trained)
    # The largest floating tensor: a NaN there cannot be missed by looking at a corner of the model.
    target = max((k for k, v in trained.items() if v.is_floating_point()), key=lambda k: trained[k].numel())
    if kind in ("nan", "inf"):
        out[target] = torch.full_like(trained[target], float(kind))
    elif kind == "shape":
        out[target] = torch.zeros(1, dtype=trained[target].dtype)
    elif kind == "scale":
        out = {k: start[k] + (v - start[k]) * 1e6 if v.is_floating_point() else v for k, v in trained.items()}
    else:
        raise ValueError(f"unknown poison {kind!r}")
    return out, n
