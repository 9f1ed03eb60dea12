"""Patients, studies and images: ids, splits, dates and acquisition, as MIMIC-CXR records them.

Ids follow MIMIC's formats (subject_id 8 digits starting with 1, study_id 8 digits starting
with 5 and not chronological, dicom_id five dash-separated groups of 8 hex digits); dates are
shifted into 2100-2200 and consistent per patient; the split is by patient.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

PA_LAT = "CHEST (PA AND LAT)"
PORTABLE_AP = "CHEST (PORTABLE AP)"
CT_CHEST = "CT CHEST W/O CONTRAST"

CT_RATE = 0.2  # share of studies that are CT
PA_LAT_RATE = 0.6  # share of radiograph studies with PA + lateral (the rest: one portable AP)
SPLITS = (("train", 0.70), ("validate", 0.15), ("test", 0.15))

VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral",
                "AXIAL": "axial"}
"""ViewCodeSequence_CodeMeaning of each ViewPosition."""


@dataclass(frozen=True)
class Image:
    """One image file of a study."""

    dicom_id: str
    view: str  # ViewPosition: PA, AP, LATERAL or AXIAL
    level: float  # CT slice level from apex (0) to base (1); 0 for radiographs
    orientation: str  # PatientOrientationCodeSequence_CodeMeaning: Erect or Recumbent


@dataclass(frozen=True)
class Study:
    """One imaging study and its images."""

    subject_id: int
    study_id: int
    split: str
    procedure: str  # PerformedProcedureStepDescription
    date: str  # StudyDate, YYYYMMDD
    time: str  # StudyTime, HHMMSS.fff
    images: tuple[Image, ...]

    @property
    def modality(self) -> str:
        """CT or CXR, read from the procedure description as a data loader would."""
        return "CT" if self.procedure.startswith("CT") else "CXR"


@dataclass(frozen=True)
class Patient:
    """A patient, their split and their studies in chronological order."""

    subject_id: int
    split: str
    studies: tuple[Study, ...]


def build(rng: np.random.Generator, n_patients: int, *, id_block: int = 0) -> list[Patient]:
    """Draw a cohort of `n_patients` with 1-3 studies each, sorted by subject_id.

    `id_block` 1 (the public cohort) draws subject and study ids from ranges disjoint from block 0's
    (2xxxxxxx / 6xxxxxxx instead of 1xxxxxxx / 5xxxxxxx): never one of the private sites' patients.
    """
    if n_patients < len(SPLITS):
        raise ValueError(f"need at least {len(SPLITS)} patients (one per split), got {n_patients}")
    subjects = sorted(_unique_ids(rng, n_patients, 10_000_000 * (1 + id_block)))
    splits = _assign_splits(rng, n_patients)
    n_studies = rng.integers(1, 4, size=n_patients)
    study_ids = iter(_unique_ids(rng, int(n_studies.sum()), 10_000_000 * (5 + id_block)))
    dicom_ids: set[str] = set()
    patients = []
    for subject_id, split, count in zip(subjects, splits, n_studies):
        day = dt.date(int(rng.integers(2110, 2190)), 1, 1) + dt.timedelta(int(rng.integers(365)))
        studies = []
        for _ in range(int(count)):
            day += dt.timedelta(int(rng.integers(1, 500)))
            time = f"{int(rng.integers(24)):02d}{int(rng.integers(60)):02d}" \
                   f"{int(rng.integers(60)):02d}.{int(rng.integers(1000)):03d}"
            procedure, images = _acquisition(rng, dicom_ids)
            studies.append(Study(subject_id, next(study_ids), split, procedure,
                                 day.strftime("%Y%m%d"), time, images))
        patients.append(Patient(subject_id, split, tuple(studies)))
    return patients


def _unique_ids(rng: np.random.Generator, n: int, start: int) -> list[int]:
    """`n` distinct 8-digit ids in [start, start + 10^7), in draw order."""
    seen: dict[int, None] = {}
    while len(seen) < n:
        for value in rng.integers(start, start + 10_000_000, size=n - len(seen)):
            seen[int(value)] = None
    return list(seen)


def _assign_splits(rng: np.random.Generator, n: int) -> list[str]:
    """About 70/15/15 of patients per split, at least one in each, in random order."""
    n_validate = max(1, round(n * SPLITS[1][1]))
    n_test = max(1, round(n * SPLITS[2][1]))
    labels = ["train"] * (n - n_validate - n_test) + ["validate"] * n_validate + ["test"] * n_test
    return [labels[i] for i in rng.permutation(n)]


def _dicom_id(rng: np.random.Generator, taken: set[str]) -> str:
    """A fresh MIMIC-style dicom_id: 5 dash-separated groups of 8 hex digits."""
    while True:
        hexa = rng.bytes(20).hex()
        dicom_id = "-".join(hexa[i:i + 8] for i in range(0, 40, 8))
        if dicom_id not in taken:
            taken.add(dicom_id)
            return dicom_id


def _acquisition(rng: np.random.Generator, taken: set[str]) -> tuple[str, tuple[Image, ...]]:
    """Draw a study's procedure and its images (views, CT slice levels, patient orientation)."""
    if rng.random() < CT_RATE:
        if rng.random() < 0.5:
            levels = [float(rng.uniform(0.4, 0.8))]
        else:
            low = float(rng.uniform(0.3, 0.45))
            levels = [low, low + float(rng.uniform(0.3, 0.45))]
        return CT_CHEST, tuple(Image(_dicom_id(rng, taken), "AXIAL", level, "Recumbent")
                               for level in levels)
    if rng.random() < PA_LAT_RATE:
        return PA_LAT, tuple(Image(_dicom_id(rng, taken), view, 0.0, "Erect")
                             for view in ("PA", "LATERAL"))
    orientation = "Erect" if rng.random() < 0.3 else "Recumbent"
    return PORTABLE_AP, (Image(_dicom_id(rng, taken), "AP", 0.0, orientation),)
