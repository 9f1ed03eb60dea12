"""MIMIC-CXR / MIMIC-CXR-JPG exactly as released (plus an optional translated-reports file).

Layout: ``files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg|.dcm|.dcm.gz``, the report ``sSTUDY.txt``
beside the study folder, and ``mimic-cxr-2.0.0-{split,chexpert,metadata}.csv[.gz]``. Reports in
other languages come from ``translated-reports.csv[.gz]`` (subject_id, study_id, language,
report). Modality is CT when PerformedProcedureStepDescription starts with "CT", else CXR.
"""
from __future__ import annotations

import math
from pathlib import Path

from client.data.report_text import training_text
from client.data.sources.csvfiles import read_csv
from client.data.sources.records import SPLITS, DataReport, Record, parse_label
from client.errors import DataError
from shared_model.findings import CHEXPERT_LABELS

IMAGE_SUFFIXES = (".jpg", ".dcm", ".dcm.gz", ".png")
TRANSLATIONS = "translated-reports"


def find_mimic_csv(root: Path, kind: str) -> Path | None:
    for suffix in (".csv.gz", ".csv"):
        path = root / f"mimic-cxr-2.0.0-{kind}{suffix}"
        if path.is_file():
            return path
    return None


def _find_csv(root: Path, stem: str) -> Path | None:
    for suffix in (".csv.gz", ".csv"):
        if (root / f"{stem}{suffix}").is_file():
            return root / f"{stem}{suffix}"
    return None


def _study_dir(root: Path, subject: str, study: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"


def _read_report(path: Path) -> str:
    if not path.is_file():
        raise DataError(path, "report file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(path, "report is not UTF-8 text") from None
    body = training_text(text)
    if not body:
        raise DataError(path, "report is empty (no FINDINGS, IMPRESSION or text)")
    return body


def _labels(root: Path, report: DataReport) -> dict[str, dict[str, float]]:
    path = find_mimic_csv(root, "chexpert")
    if path is None:
        return {}
    labels = {}
    for n, row in enumerate(read_csv(path, ("subject_id", "study_id", *CHEXPERT_LABELS)), start=2):
        try:
            labels[row["study_id"]] = {name: parse_label(row[name]) for name in CHEXPERT_LABELS}
        except ValueError as exc:
            report.skip(f"{path}:{n}", f"bad label: {exc}")
    return labels


def _metadata(root: Path) -> dict[str, dict[str, str]]:
    path = find_mimic_csv(root, "metadata")
    if path is None:
        return {}
    rows = read_csv(path, ("dicom_id", "PerformedProcedureStepDescription", "ViewPosition"))
    return {row["dicom_id"]: row for row in rows}


def _translations(root: Path, languages: tuple[str, ...] | None) -> dict[tuple[str, str], str]:
    path = _find_csv(root, TRANSLATIONS)
    if path is None:
        return {}
    rows = read_csv(path, ("study_id", "language", "report"))
    return {(r["study_id"], r["language"]): r["report"] for r in rows
            if languages is None or r["language"] in languages}


def _image_path(study_dir: Path, dicom_id: str) -> Path:
    for suffix in IMAGE_SUFFIXES:
        candidate = study_dir / f"{dicom_id}{suffix}"
        if candidate.is_file():
            return candidate
    raise DataError(study_dir / f"{dicom_id}.jpg", "image file not found (.jpg, .dcm, .dcm.gz, .png tried)")


def load_mimic(root: Path, *, languages: tuple[str, ...] | None = None) -> tuple[list[Record], DataReport]:
    """One record per image and report language; bad rows are skipped into the report."""
    report = DataReport(source=f"mimic-cxr:{root}")
    split_csv = find_mimic_csv(root, "split")
    if split_csv is None:
        raise DataError(root, "mimic-cxr-2.0.0-split.csv[.gz] not found")
    rows = read_csv(split_csv, ("dicom_id", "study_id", "subject_id", "split"))
    labels, meta = _labels(root, report), _metadata(root)
    translated = _translations(root, languages)
    texts: dict[tuple[str, str], str | DataError] = {}  # (study, language) -> text, read once per study
    records = []
    for n, row in enumerate(rows, start=2):
        subject, study, dicom_id, split = row["subject_id"], row["study_id"], row["dicom_id"], row["split"]
        if split not in SPLITS:
            report.skip(f"{split_csv}:{n}", f"unknown split value {split!r} (expected train, validate or test)")
            continue
        study_dir = _study_dir(root, subject, study)
        try:
            image = _image_path(study_dir, dicom_id)
        except DataError as exc:
            report.skip(exc.path, exc.reason)
            continue
        info = meta.get(dicom_id, {})
        modality = "CT" if info.get("PerformedProcedureStepDescription", "").upper().startswith("CT") else "CXR"
        for language in ("en", *sorted({lang for (_, lang) in translated if lang != "en"})):
            if languages is not None and language not in languages:
                continue
            key = (study, language)
            if key not in texts:
                texts[key] = _study_text(study_dir, key, translated)
            text = texts[key]
            if isinstance(text, DataError):
                continue
            records.append(Record(
                patient_id=subject, study_id=study, image=str(image), report=text, language=language,
                split=split, modality=modality, view=info.get("ViewPosition", ""),
                labels=labels.get(study, {name: math.nan for name in CHEXPERT_LABELS})))
    for text in texts.values():
        if isinstance(text, DataError):
            report.skip(text.path, text.reason)
    return records, report


def _study_text(study_dir: Path, key: tuple[str, str], translated: dict) -> str | DataError:
    study, language = key
    try:
        if language == "en":
            return _read_report(study_dir.with_suffix(".txt"))
        if key not in translated:
            return DataError(study_dir.with_suffix(".txt"), f"no {language} translation for study {study}")
        body = training_text(translated[key])
        return body or DataError(study_dir.with_suffix(".txt"), f"{language} translation is empty")
    except DataError as exc:
        return exc
