"""What one site does in a round: its data, and one local update of the requested objective."""
from __future__ import annotations

from functools import lru_cache

import torch

from client.dataset import Examples, decode, pair_batches, text_batches
from client.sources import load_records
from shared_model.model import M3FM
from shared_model.objectives import TrainConfig, contrastive_epoch, lm_epoch, make_optimizer

OBJECTIVES = ("contrastive", "report-generation")


@lru_cache(maxsize=4)
def site_examples(data_path: str, image_size: int) -> Examples:
    """The site's training examples, decoded once per process (a SuperNode process serves many rounds)."""
    records, report = load_records(data_path)
    return decode([r for r in records if r.split == "train"], image_size, report)


def example_count(examples: Examples, objective: str) -> int:
    if objective == "contrastive":
        return int((examples.image_index >= 0).sum())
    return len(examples.records)


def local_update(model: M3FM, examples: Examples, objective: str, *, train: TrainConfig, epochs: int,
                 seed: int, device: torch.device, on_step=None) -> tuple[float, int]:
    """Run ``epochs`` local epochs of one objective; returns (mean loss, examples used).

    A site without data for the objective (a text-only site in a contrastive round) trains
    nothing and reports 0 examples, so weighted averaging leaves its copy out.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    n = example_count(examples, objective)
    if n < 2:
        return float("nan"), 0
    gen = torch.Generator().manual_seed(seed)
    # The report objective's noise draws from the global RNG; simulation workers are reused
    # across sites and rounds, so seed it too or the same run gives different weights.
    torch.manual_seed(seed)
    loss = float("nan")
    if objective == "contrastive":
        optimizer = make_optimizer(model.clip.parameters(), train.lr, train.weight_decay)
        for _ in range(epochs):
            loss = contrastive_epoch(model, pair_batches(examples, train.batch_size, gen), optimizer, train, device,
                                     on_step=on_step)
    else:
        optimizer = make_optimizer(model.lm.parameters(), train.lm_lr, train.weight_decay)
        for _ in range(epochs):
            loss = lm_epoch(model, text_batches(examples, train.batch_size, gen), optimizer, train, device,
                            on_step=on_step)
    return loss, n


class InjectedFailure(RuntimeError):
    """A site made to die mid-round on purpose (``m3fed sim --drop-sites``)."""


def failure_after(steps: int):
    """An ``on_step`` callback that kills the update after ``steps`` optimizer steps."""
    done = [0]

    def on_step(_loss: float) -> None:
        done[0] += 1
        if done[0] >= steps:
            raise InjectedFailure(f"injected failure: site died after {steps} local step(s) of the round")
    return on_step
