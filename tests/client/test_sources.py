"""MIMIC-CXR and manifest readers: what is read, and how bad input is skipped and reported."""
from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import pytest

from client.data.sources import load_records
from client.errors import DataError
from shared_model.findings import CHEXPERT_LABELS


@pytest.fixture()
def mimic_copy(small_mimic: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(small_mimic, tmp_path / "mimic"))


def _rewrite_gz(path: Path, edit) -> None:
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    path.write_bytes(gzip.compress(edit(text).encode("utf-8")))


def test_mimic_records_cover_both_languages_and_official_splits(small_mimic):
    records, report = load_records(small_mimic)
    assert report.skipped == []
    assert {r.language for r in records} == {"en", "zh"}
    assert {r.split for r in records} <= {"train", "validate", "test"}
    assert {r.modality for r in records} == {"CXR", "CT"}
    en = [r for r in records if r.language == "en"]
    assert all(Path(r.image).is_file() for r in en)
    assert all(set(r.labels) == set(CHEXPERT_LABELS) for r in en)
    # Reports are the FINDINGS + IMPRESSION text, without the MIMIC headers.
    assert not any("INDICATION" in r.report or "FINDINGS:" in r.report for r in en)
    patients_per_split = {}
    for r in records:
        patients_per_split.setdefault(r.patient_id, set()).add(r.split)
    assert all(len(s) == 1 for s in patients_per_split.values())


def test_language_filter(small_mimic):
    records, _ = load_records(small_mimic, languages=("zh",))
    assert records and {r.language for r in records} == {"zh"}


def test_missing_image_is_skipped_with_its_path(mimic_copy):
    victim = next((mimic_copy / "files").rglob("*.jpg"))
    victim.unlink()
    records, report = load_records(mimic_copy)
    assert all(r.image != str(victim) for r in records)
    assert any(victim.stem in path and "not found" in reason for path, reason in report.skipped)


def test_bad_reports_are_skipped_not_fatal(mimic_copy):
    reports = sorted((mimic_copy / "files").rglob("s*.txt"))
    reports[0].write_bytes(b"\xff\xfe FINDINGS: \x80\x81 broken")
    reports[1].write_text("   \n", encoding="utf-8")
    records, report = load_records(mimic_copy, languages=("en",))
    reasons = dict(report.skipped)
    assert "not UTF-8" in reasons[str(reports[0])]
    assert "empty" in reasons[str(reports[1])]
    assert records and all(r.study_id not in (reports[0].stem[1:], reports[1].stem[1:]) for r in records)


def test_unknown_label_value_skips_the_row_and_names_it(mimic_copy):
    path = mimic_copy / "mimic-cxr-2.0.0-chexpert.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    cells = lines[1].split(",")
    cells[2] = "maybe"
    lines[1] = ",".join(cells)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    records, report = load_records(mimic_copy)
    assert any("chexpert" in p and "'maybe'" in r for p, r in report.skipped)
    study = cells[1]
    # The study stays usable for training; its labels are just unknown (not mentioned).
    assert all(math.isnan(v) for r in records if r.study_id == study for v in r.labels.values())


def test_missing_csv_column_is_a_clear_error(mimic_copy):
    _rewrite_gz(mimic_copy / "mimic-cxr-2.0.0-split.csv.gz", lambda t: t.replace("subject_id", "patient", 1))
    with pytest.raises(DataError, match=r"split\.csv\.gz: missing CSV column\(s\) subject_id"):
        load_records(mimic_copy)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match="not a dataset"):
        load_records(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_records(tmp_path / "nope")


def test_manifest_csv_and_jsonl(tmp_path, small_mimic):
    image = next((small_mimic / "files").rglob("*.jpg"))
    (tmp_path / "manifest.csv").write_text(
        "image,report,language,split,patient_id,modality,Edema\n"
        f"{image},No pulmonary edema.,en,train,p1,CXR,0.0\n"
        ",左侧少量胸腔积液。,zh,train,p2,,\n"
        f"{image},Edema.,fr,train,p3,CXR,1.0\n"
        f"{image},Edema.,en,train,p4,MRI,1.0\n"
        f"{image},,en,train,p5,CXR,\n", encoding="utf-8")
    records, report = load_records(tmp_path)
    assert [r.patient_id for r in records] == ["p1", "p2"]
    assert records[0].labels["Edema"] == 0.0 and records[1].image is None
    reasons = " | ".join(r for _, r in report.skipped)
    assert "unknown language 'fr'" in reasons and "unknown modality 'MRI'" in reasons and "empty report" in reasons

    jsonl = tmp_path / "site.jsonl"
    jsonl.write_text(json.dumps({"report": "No pneumothorax.", "language": "en", "split": "test",
                                 "patient_id": "x", "image": str(image)}) + "\n{not json\n"
                     + json.dumps({"report": "x"}) + "\n", encoding="utf-8")
    records, report = load_records(jsonl)
    assert len(records) == 1 and records[0].split == "test"
    assert [p.rsplit(":", 1)[1] for p, _ in report.skipped] == ["2", "3"]
