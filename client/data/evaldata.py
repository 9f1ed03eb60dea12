"""Test-split examples as the plain inputs of ``shared_model.evaluate.evaluate_model``."""
from __future__ import annotations

import random

import numpy as np

from client.data.dataset import Examples
from client.data.sources.records import Record


def image_groups(test: Examples, group_of_patient: dict[str, str]) -> dict[str, set[int]]:
    """Rows of ``evaluation_inputs(test)["images"]`` per group (e.g. per site owning the patient)."""
    rows: dict[int, int] = {}
    groups: dict[str, set[int]] = {}
    for record, image in zip(test.records, test.image_index.tolist()):
        if image >= 0 and image not in rows:
            rows[image] = len(rows)
            if record.patient_id in group_of_patient:
                groups.setdefault(group_of_patient[record.patient_id], set()).add(rows[image])
    return groups


def evaluation_inputs(test: Examples, labels: tuple[str, ...]) -> dict:
    """Distinct test images, their label values, and per-language (image row, reference) pairs."""
    rows: dict[int, int] = {}
    values: dict[str, list[float]] = {name: [] for name in labels}
    references: dict[str, tuple[list[int], list[str]]] = {}
    for record, image in zip(test.records, test.image_index.tolist()):
        if image < 0:
            continue
        if image not in rows:
            rows[image] = len(rows)
            for name in labels:
                values[name].append(record.labels.get(name, float("nan")))
        refs = references.setdefault(record.language, ([], []))
        refs[0].append(rows[image])
        refs[1].append(record.report)
    order = sorted(rows, key=rows.get)
    return {"images": test.images[order], "labels": {k: np.array(v) for k, v in values.items()},
            "references": references}


def bank_texts(train: list[Record], size: int, seed: int) -> list[str]:
    """Distinct training reports (all languages), sampled down to ``size`` for the memory bank."""
    texts = sorted({r.report for r in train})
    if len(texts) > size:
        texts = random.Random(seed).sample(texts, size)
    return texts


def sampled_records(records: list[Record], limit: int, seed: int) -> list[Record]:
    """At most ``limit`` records, whole patients in a seeded order (0: all), in their original order:
    a quick look at a big split scores a sample of its patients, never half of one's images."""
    if not limit or len(records) <= limit:
        return records
    patients = sorted({r.patient_id for r in records})
    random.Random(seed).shuffle(patients)
    per_patient: dict[str, int] = {}
    for r in records:
        per_patient[r.patient_id] = per_patient.get(r.patient_id, 0) + 1
    kept, total = set(), 0
    for patient in patients:
        if kept and total + per_patient[patient] > limit:
            continue
        kept.add(patient)
        total += per_patient[patient]
    return [r for r in records if r.patient_id in kept]


VALIDATION_REPORTS = 128  # validate images per language whose generated report a selection round scores


def sampled_references(inputs: dict, limit: int = VALIDATION_REPORTS, seed: int = 0) -> dict:
    """``inputs`` with at most ``limit`` (image row, reference) pairs per language, a fixed seeded
    sample: model selection scores report generation every round, and generation is what costs
    (about 12 ms per image per language for ``tiny`` on one core); AUC still uses every image."""
    references = {}
    for lang, (rows, refs) in inputs["references"].items():
        picked = sorted(random.Random(f"{seed}-{lang}").sample(range(len(rows)), limit)) if len(rows) > limit \
            else range(len(rows))
        references[lang] = ([rows[i] for i in picked], [refs[i] for i in picked])
    return {**inputs, "references": references}
