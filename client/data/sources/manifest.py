"""A generic manifest (CSV or JSONL) so any dataset plugs in.

Columns / keys: ``report``, ``language`` (en|zh), ``split`` (train|validate|test), ``patient_id``
are required; ``image`` (path relative to the manifest; several joined by ``;`` give one record
each; empty = text-only), ``study_id``, ``modality`` (CXR|CT), ``view`` and any CheXpert label
column (1, 0, -1 or blank) are optional.
"""
from __future__ import annotations

import json
from pathlib import Path

from client.data.sources.csvfiles import read_csv
from client.data.sources.records import MODALITIES, SPLITS, DataReport, Record, parse_label
from client.errors import DataError
from shared_model.findings import CHEXPERT_LABELS, LANGUAGES

MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
REQUIRED = ("report", "language", "split", "patient_id")


def _read_jsonl(path: Path, report: DataReport) -> list[tuple[int, dict[str, str]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(path, "manifest is not UTF-8 text") from None
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("a line must be a JSON object")
        except ValueError as exc:
            report.skip(f"{path}:{n}", f"invalid JSON line: {exc}")
            continue
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            report.skip(f"{path}:{n}", f"missing field(s) {', '.join(missing)}")
            continue
        rows.append((n, {k: "" if v is None else str(v) for k, v in row.items()}))
    return rows


def load_manifest(path: Path, *, languages: tuple[str, ...] | None = None
                  ) -> tuple[list[Record], DataReport]:
    report = DataReport(source=f"manifest:{path}")
    if path.suffix == ".jsonl":
        rows = _read_jsonl(path, report)
    elif path.name.endswith((".csv", ".csv.gz")):
        rows = list(enumerate(read_csv(path, REQUIRED), start=2))  # line 1 is the header
    else:
        raise DataError(path, "manifest must be .csv, .csv.gz or .jsonl")
    records = []
    for line, row in rows:
        try:
            records.extend(_records(row, path.parent))
        except ValueError as exc:
            report.skip(f"{path}:{line}", str(exc))
    if languages is not None:
        records = [r for r in records if r.language in languages]
    return records, report


def _records(row: dict[str, str], base: Path) -> list[Record]:
    language, split = row["language"].strip().lower(), row["split"].strip().lower()
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {row['language']!r} (expected {' or '.join(LANGUAGES)})")
    if split not in SPLITS:
        raise ValueError(f"unknown split {row['split']!r} (expected train, validate or test)")
    modality = (row.get("modality") or "CXR").strip().upper()
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {row.get('modality')!r} (expected CXR or CT)")
    text = " ".join(row["report"].split())
    if not text:
        raise ValueError("empty report")
    labels = {name: parse_label(row.get(name, "")) for name in CHEXPERT_LABELS}
    images = [p.strip() for p in row.get("image", "").split(";") if p.strip()] or [None]
    return [Record(patient_id=row["patient_id"], study_id=row.get("study_id") or row["patient_id"],
                   image=str((base / img).resolve()) if img else None, report=text, language=language,
                   split=split, modality=modality, view=row.get("view", ""), labels=labels)
            for img in images]
