"""The MIMIC-CXR / MIMIC-CXR-JPG on-disk layout: paths, official CSV columns, deterministic writers.

Everything written here is byte-reproducible: gzip headers carry no timestamp or file name, rows
keep the generator's deterministic order (by subject, studies in date order) and numbers have one
fixed format, so two runs with the same seed can be compared file by file.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from shared_model.findings import CHEXPERT_LABELS

SPLIT_CSV = "mimic-cxr-2.0.0-split.csv.gz"
CHEXPERT_CSV = "mimic-cxr-2.0.0-chexpert.csv.gz"
METADATA_CSV = "mimic-cxr-2.0.0-metadata.csv.gz"
TRANSLATED_CSV = "translated-reports.csv.gz"
MANIFEST = "m3fed-synth.json"
IMAGE_FILENAMES = "IMAGE_FILENAMES"

SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
CHEXPERT_COLUMNS = ("subject_id", "study_id", *CHEXPERT_LABELS)
METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
)
TRANSLATED_COLUMNS = ("subject_id", "study_id", "language", "report")

JPEG_QUALITY = 95

Row = Sequence[object]


def study_dir(root: Path, subject_id: int, study_id: int) -> Path:
    """files/pXX/pSUBJECT/sSTUDY, where XX are the subject id's first two digits."""
    subject = str(subject_id)
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study_id}"


def report_path(root: Path, subject_id: int, study_id: int) -> Path:
    """The study's report, a sibling of its folder: files/pXX/pSUBJECT/sSTUDY.txt."""
    folder = study_dir(root, subject_id, study_id)
    return folder.with_name(folder.name + ".txt")


def label_cell(value: float | None) -> str:
    """A CheXpert cell as MIMIC writes it: 1.0, 0.0, -1.0, or empty when not mentioned."""
    return "" if value is None else f"{value:.1f}"


def write_csv_gz(path: Path, columns: Sequence[str], rows: Iterable[Row]) -> None:
    """Write a gzipped CSV with a header and a timestamp-free gzip header."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                mtime=0) as gz:
        gz.write(text.getvalue().encode("utf-8"))


def write_jpeg(path: Path, pixels: np.ndarray) -> None:
    """Write display values in [0, 1] as an 8-bit grayscale JPEG."""
    data = np.rint(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)
    PILImage.fromarray(data).save(path, format="JPEG", quality=JPEG_QUALITY)


def write_json(path: Path, payload: dict[str, object]) -> None:
    """Write stable, readable JSON."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                    encoding="utf-8")
