"""A site's optimiser state kept from one of its rounds to the next (it never leaves the site).

A fresh AdamW every round throws away the moment estimates a site has built up, and each round
restarts with a bias-corrected first step of full size on the new global weights. Keeping each
site's own moments across rounds (per objective) is what pooled training does with its single
optimiser; it is also what "each virtual site keeps its own state across rounds" asks for.

Only the per-parameter state is kept: learning rate and weight decay come from this round's
configuration and schedule. On disk, each round writes its own file and a round reads the newest
file of an *earlier* round, so a round re-run after a crash (``--resume``) starts from exactly the
state it started from the first time.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

import torch


class OptimizerMemory(Protocol):
    def load(self, objective: str) -> dict | None: ...

    def save(self, objective: str, state: dict) -> None: ...


class InMemory:
    """One process that trains round after round (the pooled and single-site baselines)."""

    def __init__(self) -> None:
        self.states: dict[str, dict] = {}

    def load(self, objective: str) -> dict | None:
        return self.states.get(objective)

    def save(self, objective: str, state: dict) -> None:
        self.states[objective] = state


class AfterRecord:
    """Holds a round's saves until ``commit()``: a DP round's moments come from its noised steps, and
    are kept only once the ledger has recorded the round. A round that fails to record (budget taken
    by a concurrent run, a damaged ledger) or a process that dies before, leaves no state behind."""

    def __init__(self, inner: OptimizerMemory) -> None:
        self.inner, self.pending = inner, {}

    def load(self, objective: str) -> dict | None:
        return self.inner.load(objective)

    def save(self, objective: str, state: dict) -> None:
        self.pending[objective] = state

    def commit(self) -> None:
        for objective, state in self.pending.items():
            self.inner.save(objective, state)
        self.pending.clear()


class RoundFiles:
    """``<folder>/optimizer-<objective>-r<round>.pt``: a site process is new every round (SuperNode)."""

    def __init__(self, folder: str | Path, round: int) -> None:
        if round < 1:
            raise ValueError(f"round must be >= 1, got {round}")
        self.folder, self.round = Path(folder), round

    def _rounds(self, objective: str) -> dict[int, Path]:
        pattern = re.compile(rf"optimizer-{re.escape(objective)}-r(\d+)\.pt")
        found = {}
        if self.folder.is_dir():
            for path in self.folder.iterdir():
                match = pattern.fullmatch(path.name)
                if match:
                    found[int(match.group(1))] = path
        return found

    def load(self, objective: str) -> dict | None:
        rounds = self._rounds(objective)
        earlier = [r for r in rounds if r < self.round]
        if not earlier:
            return None
        return torch.load(rounds[max(earlier)], map_location="cpu", weights_only=True)

    def save(self, objective: str, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"optimizer-{objective}-r{self.round}.pt"
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:  # 0600: site-only
            torch.save(state, f)
        partial.replace(path)  # a crash mid-write leaves no half file that a later round would read
        rounds = self._rounds(objective)
        earlier = [r for r in rounds if r < self.round]
        # Keep the state this round started from (a re-run of this round needs it) and this round's.
        for r in earlier:
            if r < max(earlier):
                rounds[r].unlink(missing_ok=True)


def restore(optimizer: torch.optim.Optimizer, memory: OptimizerMemory | None, objective: str) -> None:
    """Load the kept per-parameter state into a freshly built optimiser, keeping its hyperparameters."""
    state = memory.load(objective) if memory is not None else None
    if state is None:
        return
    fresh = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    indices = [i for group in fresh["param_groups"] for i in group["params"]]
    kept = [i for group in state["param_groups"] for i in group["params"]]
    # torch checks only the counts; a moment of another shape would fail later, mid-round.
    if kept != indices or any(state["state"][i]["exp_avg"].shape != p.shape
                              for i, p in zip(indices, params) if i in state["state"]):
        raise ValueError(f"kept {objective} optimiser state does not match the model's parameters")
    optimizer.load_state_dict({"state": state["state"], "param_groups": fresh["param_groups"]})


def keep(optimizer: torch.optim.Optimizer, memory: OptimizerMemory | None, objective: str) -> None:
    if memory is not None:
        memory.save(objective, optimizer.state_dict())
