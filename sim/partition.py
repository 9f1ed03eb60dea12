"""Split a dataset's training patients into virtual hospital sites.

Partitions are by patient (no patient at two sites). Training patients are split by the chosen
scheme; the official test split is split the same way but only as each site's local evaluation
set (``split: test`` rows, never trained on); the validate split never reaches a site. Each site gets a report language and may be text-only (it keeps the reports and
drops the images, like a hospital contributing only its report archive).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from client.data.sources.records import Record
from shared_model.findings import DEFAULT_EVAL_LABELS


@dataclass(frozen=True)
class SiteSpec:
    name: str
    language: str
    text_only: bool = False


def parse_partition(scheme: str) -> tuple[str, float | None]:
    if scheme in ("iid", "view"):
        return scheme, None
    kind, _, value = scheme.partition(":")
    if kind in ("dirichlet", "size"):
        try:
            alpha = float(value)
        except ValueError:
            alpha = -1.0
        if alpha > 0:
            return kind, alpha
    raise ValueError(f"--partition {scheme!r}: use iid, view, dirichlet:ALPHA (label skew) or size:ALPHA "
                     "(size skew), ALPHA > 0")


def primary_label(records: list[Record]) -> str:
    """The first positive evaluation finding of a patient (or 'normal'): the class label skew acts on."""
    for name in DEFAULT_EVAL_LABELS:
        if any(r.labels.get(name) == 1.0 for r in records):
            return name
    return "normal"


def assign_patients(records: list[Record], n_sites: int, scheme: str, seed: int, split: str = "train"
                    ) -> dict[str, int]:
    """patient id -> site index, for the patients of one split."""
    kind, alpha = parse_partition(scheme)
    rng = np.random.default_rng([seed, ("train", "test").index(split)])
    by_patient: dict[str, list[Record]] = {}
    for r in records:
        if r.split == split:
            by_patient.setdefault(r.patient_id, []).append(r)
    patients = sorted(by_patient)
    if len(patients) < n_sites and split == "train":  # fewer test patients than sites: some evaluate nothing
        raise ValueError(f"{len(patients)} training patients cannot fill {n_sites} sites")
    if kind == "iid":
        order = rng.permutation(len(patients))
        return {patients[i]: k % n_sites for k, i in enumerate(order)}
    if kind == "view":
        keys = sorted({(by_patient[p][0].modality, by_patient[p][0].view) for p in patients})
        key_site = {key: i % n_sites for i, key in enumerate(keys)}
        return {p: key_site[(by_patient[p][0].modality, by_patient[p][0].view)] for p in patients}
    if kind == "size":  # label-blind, site sizes drawn from Dirichlet(alpha)
        sizes = rng.dirichlet([alpha] * n_sites)
        return {p: int(site) for p, site in zip(patients, rng.choice(n_sites, size=len(patients), p=sizes))}
    return _label_skew(by_patient, patients, n_sites, alpha, rng)


def _label_skew(by_patient: dict[str, list[Record]], patients: list[str], n_sites: int, alpha: float,
                rng: np.random.Generator) -> dict[str, int]:
    """Equal-sized sites, each with its own label mix q_k ~ Dirichlet(alpha * L * prior) (Hsu et al., 2019).

    Sizes stay equal so that label skew is not confounded with size skew (that is ``size:A``); scaling by
    L * prior keeps alpha's meaning of a symmetric Dirichlet(alpha) when labels are balanced while each
    site's mix matches the data's label frequencies in expectation.
    """
    groups: dict[str, list[str]] = {}
    for p in patients:
        groups.setdefault(primary_label(by_patient[p]), []).append(p)
    labels = sorted(groups)
    pools = {label: [groups[label][i] for i in rng.permutation(len(groups[label]))] for label in labels}
    prior = np.array([len(groups[label]) for label in labels], dtype=float) / len(patients)
    mixes = rng.dirichlet(alpha * len(labels) * prior, size=n_sites)
    quota = [len(patients) // n_sites + (k < len(patients) % n_sites) for k in range(n_sites)]
    assignment: dict[str, int] = {}
    while len(assignment) < len(patients):  # round robin, so no site is left only the leftovers
        for site in range(n_sites):
            if quota[site] == 0:
                continue
            left = np.array([len(pools[label]) > 0 for label in labels], dtype=float)
            weights = mixes[site] * left
            # A site whose labels are used up takes from what is left, in proportion to what is left.
            weights = weights if weights.sum() > 0 else left * prior
            label = labels[rng.choice(len(labels), p=weights / weights.sum())]
            assignment[pools[label].pop()] = site
            quota[site] -= 1
    return assignment


def write_sites(records: list[Record], sites: list[SiteSpec], scheme: str, seed: int, root: Path, *,
                limit: int = 0) -> dict[str, int]:
    """Write ``root/<site>/manifest.jsonl`` per site; returns training records per site.

    ``limit`` (``--max-records-per-site``): at most this many training and this many test records
    per site, a seeded sample (0: all)."""
    train = assign_patients(records, len(sites), scheme, seed, "train")
    has_test = any(r.split == "test" for r in records)
    test = assign_patients(records, len(sites), scheme, seed, "test") if has_test else {}
    counts = {}
    for index, site in enumerate(sites):
        folder = root / site.name
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        seen_text = set()
        for r in records:
            if r.language != site.language:
                continue
            if r.split == "train" and train.get(r.patient_id) == index:
                if site.text_only:
                    if r.study_id in seen_text:  # one report per study, not one per image
                        continue
                    seen_text.add(r.study_id)
            elif not (r.split == "test" and test.get(r.patient_id) == index and not site.text_only):
                continue
            # Absolute: the manifest lives elsewhere than the data it points to.
            rows.append({"image": "" if site.text_only else str(Path(r.image).resolve()), "report": r.report,
                         "language": r.language, "split": r.split, "patient_id": r.patient_id,
                         "study_id": r.study_id, "modality": r.modality, "view": r.view,
                         **{k: "" if v != v else v for k, v in r.labels.items()}})
        if limit:
            rows = _sampled(rows, limit, random.Random(f"{seed}-{site.name}"))
        with open(folder / "manifest.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        counts[site.name] = sum(row["split"] == "train" for row in rows)
    return counts


def _sampled(rows: list[dict], limit: int, rng: random.Random) -> list[dict]:
    """At most ``limit`` rows of each split, in their original order."""
    kept = []
    for split in dict.fromkeys(row["split"] for row in rows):
        index = [i for i, row in enumerate(rows) if row["split"] == split]
        kept += index if len(index) <= limit else rng.sample(index, limit)
    return [rows[i] for i in sorted(kept)]
