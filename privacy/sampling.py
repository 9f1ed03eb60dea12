"""What a DP round samples: its privacy units, its planned steps and its Poisson batches.

q = batch_size / units and the integer step count are fixed before training (``planned_steps``);
every step draws Bernoulli(q) per unit from a ``torch.Generator`` seeded with the round's
``seed``. Every planned step is a noised optimizer step, also when the sample is empty (or holds
one record, which ``contrastive_epoch`` would skip): the batch is padded with public filler rows
(a blank image, a public text) whose gradient rows are dropped before clipping. A
report-generation sample runs as several physical batches (``PoissonBatches``): Opacus clips and
accumulates each and noises once, at the sample's last. Subsampling amplification assumes the
sample stays secret: ``seed`` must be site-private, not the run's public seed.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from client.dataset import Examples

OBJECTIVES = ("contrastive", "report-generation")
UNITS = ("record", "patient")
# Rows per physical batch of a DP report-generation step; 3-4 per Poisson batch of 64 measured
# fastest on 2 CPU cores (BENCHMARKS.md, issue C). It also bounds the per-sample gradients held.
PHYSICAL_ROWS = 16


def planned_steps(n_units: int, *, batch_size: int, epochs: int) -> tuple[int, float]:
    """(integer steps, Poisson sample rate q = batch_size / n_units) for `epochs` expected passes."""
    if n_units < 1 or batch_size < 1 or epochs < 1:
        raise ValueError(f"need n_units, batch_size and epochs >= 1, got {n_units}, {batch_size}, {epochs}")
    if batch_size > n_units:
        raise ValueError(f"expected batch size {batch_size} exceeds the {n_units} units: q would be above 1")
    # Integer ceiling: epochs·N/B expected passes without float rounding (privacy.md §3).
    return -(-epochs * n_units // batch_size), batch_size / n_units


def privacy_units(examples: Examples, objective: str, *, unit: str) -> list[list[int]]:
    """Record indices of each unit: one record, or one patient's records, among those the objective uses."""
    if objective not in OBJECTIVES or unit not in UNITS:
        raise ValueError(f"objective must be one of {OBJECTIVES} and unit one of {UNITS}")
    rows = [i for i in range(len(examples.records))
            if objective != "contrastive" or int(examples.image_index[i]) >= 0]
    if unit == "record":
        return [[i] for i in rows]
    by_patient: dict[str, list[int]] = {}
    for i in rows:
        by_patient.setdefault(examples.records[i].patient_id, []).append(i)
    return list(by_patient.values())


class PoissonBatches:
    """``steps`` Poisson samples of units, as the batches ``contrastive_epoch`` / ``lm_epoch`` take.

    Remembers the row → unit map of the batch it yielded last: the epoch loops step on a batch
    before asking for the next, so the optimizer reads the map of the batch it is stepping on.

    ``physical_rows`` splits a report-generation sample into physical batches of at most that many
    rows, its units ordered by report length, so a short report is not padded to the longest one
    of 64 (a vocabulary-wide softmax per padded position). The split is Opacus' physical-batch
    mechanism (``BatchMemoryManager``): every physical batch but the last signals the optimizer to
    clip and accumulate without a step, so one sample is still one noised step; units are never
    split, so a patient's records are clipped together. ``skip`` is the optimizer's
    ``signal_skip_step``, set once the optimizer exists.
    """

    def __init__(self, examples: Examples, units: list[list[int]], *, objective: str, sample_rate: float,
                 steps: int, generator: torch.Generator, filler_text: str, physical_rows: int = 0) -> None:
        self.examples, self.units, self.objective = examples, units, objective
        self.sample_rate, self.steps, self.generator = sample_rate, steps, generator
        self.filler_text = filler_text
        # contrastive_epoch skips batches under 2 rows; lm_epoch cannot tokenise an empty one.
        self.min_rows = 2 if objective == "contrastive" else 1
        # Images have one size: only report generation gains from splitting by length.
        self.physical_rows = physical_rows if objective == "report-generation" else 0
        self.skip: Callable[[bool], None] = lambda _skip: None
        self.row_units, self.n_units = torch.zeros(0, dtype=torch.long), 0

    def current(self) -> tuple[torch.Tensor, int]:
        return self.row_units, self.n_units

    def __iter__(self):
        for _ in range(self.steps):
            chosen = torch.nonzero(torch.rand(len(self.units), generator=self.generator) < self.sample_rate)
            parts = self._physical(chosen.flatten().tolist())
            for k, part in enumerate(parts):
                rows = [r for u in part for r in self.units[u]]
                fill = max(0, self.min_rows - len(rows))
                self.row_units = torch.tensor([j for j, u in enumerate(part) for _ in self.units[u]] + [-1] * fill,
                                              dtype=torch.long)
                self.n_units = len(part)
                self.skip(k < len(parts) - 1)
                yield self._batch(rows, fill)

    def _physical(self, chosen: list[int]) -> list[list[int]]:
        if not self.physical_rows or not chosen:
            return [chosen]
        records = self.examples.records
        chosen = sorted(chosen, key=lambda u: max(len(records[r].report) for r in self.units[u]))
        total = sum(len(self.units[u]) for u in chosen)
        # Balanced: 65 rows at 16 go as 13 x 5, not 16 x 4 + 1.
        size = -(-total // -(-total // self.physical_rows))
        parts, rows = [[]], 0
        for u in chosen:
            if parts[-1] and rows + len(self.units[u]) > size:
                parts.append([])
                rows = 0
            parts[-1].append(u)
            rows += len(self.units[u])
        return parts

    def _batch(self, rows: list[int], fill: int):
        records = [self.examples.records[i] for i in rows]
        texts = [r.report for r in records] + [self.filler_text] * fill
        if self.objective == "contrastive":
            size = self.examples.images.shape[-1]
            images = self.examples.image_float(self.examples.image_index[rows])
            return torch.cat([images, torch.zeros(fill, 1, size, size)]), texts
        return texts, [r.language for r in records] + [language_of(self.filler_text)] * fill


def language_of(text: str) -> str:
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"
