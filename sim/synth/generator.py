"""Generate the synthetic MIMIC-CXR: cohort → mentions → reports, images and CSVs → manifest.

Randomness is split into independent streams keyed by (seed, purpose, id): one for the cohort,
one per patient (build, lasting conditions), one per study (findings, report wording) and one
per image (pose, exposure, noise). So output is reproducible, and each study's content does not
depend on how many images came before it.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared_model.findings import CHEXPERT_LABELS

from . import ct, cxr
from .canvas import SIZE, Anatomy, Style
from .cohort import VIEW_MEANING, Study, build
from .dicom import write_ct, write_dx
from .labels import POSITIVE, UNCERTAIN, Risk, chexpert_row, mention, sample_present, \
    sample_risk, trace_strengths
from .layout import (CHEXPERT_COLUMNS, CHEXPERT_CSV, IMAGE_FILENAMES, MANIFEST, METADATA_COLUMNS,
                     METADATA_CSV, SPLIT_COLUMNS, SPLIT_CSV, TRANSLATED_COLUMNS, TRANSLATED_CSV,
                     Row, label_cell, report_path, study_dir, write_csv_gz, write_jpeg, write_json)
from .reports import chinese, english

GENERATOR_VERSION = "1.0"
DEFAULT_PATIENTS = 600
DEFAULT_DIFFICULTY = 0.15
"""Traces at ~89 % contrast, noise sd ~0.024, anatomy spread x0.73.

Calibrated against the model, as the data is meant to be: the pooled `tiny` model (20
contrastive + 5 report epochs) reaches a zero-shot macro AUC of 0.916 (seed 0) and 0.906
(seed 1) here, inside the 0.85-0.95 band (BENCHMARKS.md). In a shorter probe (12 contrastive
epochs, seed-1 data, before the nodule was enlarged) 0.35 gave 0.79 and 0.15 gave 0.86.
A per-label logistic regression on 64x64 pixels (supervised, not zero-shot; also measured
before the nodule was enlarged) gave ~0.99 at 0.0, ~0.90 at 0.35, ~0.75 at 0.7, ~0.60 at 1.0.
"""

SPLIT_NAMES = ("train", "validate", "test")


@dataclass
class _Tables:
    """Rows collected while writing studies, flushed to the CSVs at the end."""

    split: list[Row] = field(default_factory=list)
    chexpert: list[Row] = field(default_factory=list)
    metadata: list[Row] = field(default_factory=list)
    translated: list[Row] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    labelled: list[tuple[Study, dict[str, float | None]]] = field(default_factory=list)


STYLES = ("private", "public")


def generate(out: Path, *, patients: int = DEFAULT_PATIENTS, seed: int = 0, dicom: bool = False,
             difficulty: float = DEFAULT_DIFFICULTY, style: str = "private") -> dict[str, object]:
    """Write a synthetic MIMIC-CXR(-JPG) dataset under `out` and return its summary.

    `dicom` writes .dcm files (DX and CT) instead of JPEGs; `difficulty` in [0, 1] fades the
    findings' traces and adds noise and variability (see `canvas.Style`). Existing files with
    the same names are overwritten; nothing else under `out` is touched.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    public = style == "public"
    drawing = dataclasses.replace(Style.from_difficulty(difficulty), public=public)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = _Tables()
    for patient in build(np.random.default_rng([seed, 0]), patients, id_block=int(public)):
        rng = np.random.default_rng([seed, 1, patient.subject_id])
        risk, anatomy = sample_risk(rng), Anatomy.sample(rng, drawing.variability)
        for study in patient.studies:
            _write_study(out, study, risk, anatomy, drawing, seed, dicom, tables)
    write_csv_gz(out / SPLIT_CSV, SPLIT_COLUMNS, tables.split)
    write_csv_gz(out / CHEXPERT_CSV, CHEXPERT_COLUMNS, tables.chexpert)
    write_csv_gz(out / METADATA_CSV, METADATA_COLUMNS, tables.metadata)
    write_csv_gz(out / TRANSLATED_CSV, TRANSLATED_COLUMNS, tables.translated)
    (out / IMAGE_FILENAMES).write_text("".join(f"{p}\n" for p in sorted(tables.files)))
    summary = _summarise(tables.labelled)
    write_json(out / MANIFEST, {"generator": "m3fed.sim.synth", "version": GENERATOR_VERSION,
                                "seed": seed, "patients": patients, "difficulty": difficulty, "style": style,
                                "dicom": dicom, "image_size": SIZE, "summary": summary})
    return summary


def _write_study(out: Path, study: Study, risk: Risk, anatomy: Anatomy, style: Style, seed: int,
                 dicom: bool, tables: _Tables) -> None:
    """Draw one study's findings, write its reports and images, and collect its CSV rows."""
    rng = np.random.default_rng([seed, 2, study.study_id])
    mentions = mention(rng, sample_present(rng, risk))
    alpha = {label: strength * style.amplitude
             for label, strength in trace_strengths(rng, mentions).items()}
    folder = study_dir(out, study.subject_id, study.study_id)
    folder.mkdir(parents=True, exist_ok=True)
    report_path(out, study.subject_id, study.study_id).write_text(
        english(study.procedure, mentions, rng), encoding="utf-8")
    tables.translated.append((study.subject_id, study.study_id, "zh", chinese(mentions)))
    row = chexpert_row(mentions)
    tables.chexpert.append((study.subject_id, study.study_id,
                            *(label_cell(row[label]) for label in CHEXPERT_LABELS)))
    tables.labelled.append((study, row))
    for index, image in enumerate(study.images):
        image_rng = np.random.default_rng([seed, 3, study.study_id, index])
        path = folder / f"{image.dicom_id}.{'dcm' if dicom else 'jpg'}"
        if image.view == "AXIAL":
            hu = ct.axial(alpha, anatomy, image_rng, style, image.level)
            if dicom:
                write_ct(path, hu, study, image, index)
            else:
                write_jpeg(path, ct.display(hu))
        else:
            paint = cxr.lateral if image.view == "LATERAL" else cxr.frontal
            pixels = paint(alpha, anatomy, image_rng, style)
            if dicom:
                write_dx(path, pixels, study, image)
            else:
                write_jpeg(path, pixels)
        tables.files.append(path.relative_to(out).as_posix())
        tables.split.append((image.dicom_id, study.study_id, study.subject_id, study.split))
        tables.metadata.append((
            image.dicom_id, study.subject_id, study.study_id, study.procedure, image.view, SIZE,
            SIZE, study.date, study.time, study.procedure, VIEW_MEANING[image.view],
            image.orientation))


def _summarise(labelled: list[tuple[Study, dict[str, float | None]]]) -> dict[str, object]:
    """Counts per split and modality, and label prevalence (share of studies)."""
    patients = {split: len({s.subject_id for s, _ in labelled if s.split == split})
                for split in SPLIT_NAMES}
    studies: dict[str, Counter[str]] = {split: Counter() for split in SPLIT_NAMES}
    images: dict[str, Counter[str]] = {split: Counter() for split in SPLIT_NAMES}
    test_positive_images: Counter[str] = Counter()
    for study, row in labelled:
        studies[study.split][study.modality] += 1
        images[study.split][study.modality] += len(study.images)
        if study.split == "test":
            for label in CHEXPERT_LABELS:
                test_positive_images[label] += len(study.images) * (row[label] == POSITIVE)
    n = len(labelled)

    def share(value: float) -> dict[str, float]:
        return {label: round(sum(row[label] == value for _, row in labelled) / n, 4)
                for label in CHEXPERT_LABELS}

    def by_modality(counts: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
        return {split: {"CXR": c["CXR"], "CT": c["CT"]} for split, c in counts.items()}

    return {"patients": {**patients, "total": sum(patients.values())},
            "studies": by_modality(studies), "images": by_modality(images),
            "total_studies": n, "total_images": sum(len(s.images) for s, _ in labelled),
            "prevalence": share(POSITIVE), "uncertain": share(UNCERTAIN),
            "test_positive_images": {label: test_positive_images[label]
                                     for label in CHEXPERT_LABELS}}
