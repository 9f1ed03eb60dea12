"""What a DP round samples: its privacy units, its planned steps and its Poisson batches.

A unit is a study at ``unit: record`` (the rows sharing ``(patient_id, study_id)``: its report,
every image, every translation) and a patient at ``unit: patient``. Report generation trains a
study's report once per language: the copies the loaders make per image are one example.
``max_records_per_patient`` (studies per patient, record level) is enforced on the data by
``cap_studies_per_patient`` before anything is planned. A manifest row without ``study_id`` takes
the patient id as its study (``client.data.sources.manifest``): its unit is then the whole patient.

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

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from privacy.policy import UNITS
from shared_model.schedule import OBJECTIVES


class Examples(Protocol):
    """What DP sampling reads of a site's examples (``client.data.dataset.Examples`` is one): its
    records (``patient_id``, ``study_id``, ``language``, ``report``, ...) and, per record, its row of
    ``images`` (-1: text-only)."""

    records: list
    image_index: torch.Tensor
    images: torch.Tensor

    def subset(self, keep: Callable) -> Examples: ...

    def image_float(self, rows: torch.Tensor) -> torch.Tensor: ...

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


def study_of(record) -> tuple[str, str]:
    """A study is a patient's study id: two patients' equal study ids are two studies."""
    return record.patient_id, record.study_id


def training_rows(examples: Examples, objective: str) -> list[int]:
    """Rows a DP round of ``objective`` trains on: every image row (contrastive pairs), or each
    study's report once per language and text (report generation; the per-image copies are one)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    records = examples.records
    if objective == "contrastive":
        return [i for i, image in enumerate(examples.image_index.tolist()) if image >= 0]
    first: dict[tuple[str, str, str, str], int] = {}
    for i, r in enumerate(records):
        first.setdefault((*study_of(r), r.language, r.report), i)
    return list(first.values())


def privacy_units(examples: Examples, objective: str, *, unit: str) -> list[list[int]]:
    """Record indices of each unit among the rows the objective trains on: a study's, or a patient's."""
    if objective not in OBJECTIVES or unit not in UNITS:
        raise ValueError(f"objective must be one of {OBJECTIVES} and unit one of {UNITS}")
    groups: dict[object, list[int]] = {}
    for i in training_rows(examples, objective):
        r = examples.records[i]
        groups.setdefault(r.patient_id if unit == "patient" else study_of(r), []).append(i)
    return list(groups.values())


@dataclass(frozen=True)
class StudyCap:
    """What enforcing ``max_records_per_patient`` (studies per patient) dropped; stays at the site."""

    max_studies_per_patient: int | None
    patients_over: int = 0
    studies_dropped: int = 0
    rows_dropped: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def cap_studies_per_patient(examples: Examples, max_studies: int | None, *, report=None
                            ) -> tuple[Examples, StudyCap]:
    """Keep each patient's ``max_studies`` lowest study ids; drop (and count) their other studies.

    Lowest ids, compared as numbers where they are digits: a choice that depends on the data alone
    (not on file order), so every round and run trains the same studies. MIMIC study ids are not
    dates: which studies are kept is arbitrary but reproducible. ``report`` (a ``DataReport``)
    gets one skipped item per dropped study. None: no bound, nothing dropped.
    """
    if max_studies is None:
        return examples, StudyCap(None)
    if isinstance(max_studies, bool) or not isinstance(max_studies, int) or max_studies < 1:
        raise ValueError(f"max_records_per_patient must be a positive integer, got {max_studies!r}")
    studies: dict[str, set[str]] = {}
    for r in examples.records:
        studies.setdefault(r.patient_id, set()).add(r.study_id)
    dropped = {(patient, study) for patient, ids in studies.items()
               for study in sorted(ids, key=_study_order)[max_studies:]}
    if not dropped:
        return examples, StudyCap(max_studies)
    kept = examples.subset(lambda r: study_of(r) not in dropped)
    if report is not None:
        for patient, study in sorted(dropped):
            report.skip(f"patient {patient} study {study}",
                        f"over max_records_per_patient: the patient's {max_studies} lowest study ids are kept")
    return kept, StudyCap(max_studies, patients_over=len({patient for patient, _ in dropped}),
                          studies_dropped=len(dropped), rows_dropped=len(examples.records) - len(kept.records))


def _study_order(study_id: str) -> tuple:
    return (0, int(study_id), study_id) if study_id.isdigit() else (1, 0, study_id)


class PoissonBatches:
    """``steps`` Poisson samples of units, as the batches ``contrastive_epoch`` / ``lm_epoch`` take.

    Remembers the row → unit map of the batch it yielded last: the epoch loops step on a batch
    before asking for the next, so the optimizer reads the map of the batch it is stepping on.

    ``physical_rows`` splits a report-generation sample into physical batches of at most that many
    rows, its units ordered by report length, so a short report is not padded to the longest one
    of 64 (a vocabulary-wide softmax per padded position). The split is Opacus' physical-batch
    mechanism (``BatchMemoryManager``): every physical batch but the last signals the optimizer to
    clip and accumulate without a step, so one sample is still one noised step; units are never
    split, so a unit's rows (a study's, a patient's) are clipped together. ``skip`` is the optimizer's
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
