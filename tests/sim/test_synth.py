"""The synthetic MIMIC-CXR must look like the real one on disk and say the same thing three ways
(CheXpert CSV, English report, Chinese report, and the pixels)."""
from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from shared_model.findings import CHEXPERT_LABELS, PHRASES
from sim.synth import DEFAULT_DIFFICULTY, DEFAULT_PATIENTS, generate

# The official column orders (MIMIC-CXR-JPG 2.0.0), written out rather than imported.
SPLIT_COLUMNS = ["dicom_id", "study_id", "subject_id", "split"]
CHEXPERT_COLUMNS = [
    "subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
    "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding",
    "Pleural Effusion", "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices"]
METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]
TRANSLATED_COLUMNS = ["subject_id", "study_id", "language", "report"]
CSVS = ["mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.0.0-chexpert.csv.gz",
        "mimic-cxr-2.0.0-metadata.csv.gz", "translated-reports.csv.gz"]

PATHOLOGIES = [label for label in CHEXPERT_LABELS if label not in ("Lung Opacity", "No Finding")]
OPACITY = ("Atelectasis", "Consolidation", "Edema", "Pneumonia", "Lung Lesion")
VALUE_KIND = {"1.0": "positive", "0.0": "negative", "-1.0": "uncertain"}


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a gzipped CSV."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def study_folder(root: Path, subject: str, study: str) -> Path:
    return root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"


@pytest.fixture(scope="module")
def jpg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_jpg")
    generate(out, patients=30, seed=7)
    return out


@pytest.fixture(scope="module")
def tables(jpg: Path) -> dict[str, list[dict[str, str]]]:
    return {name: read_csv(jpg / name)[1] for name in CSVS}


def test_defaults() -> None:
    assert DEFAULT_PATIENTS == 600
    assert 0.0 <= DEFAULT_DIFFICULTY <= 1.0


def test_csv_columns_are_official(jpg: Path) -> None:
    for name, columns in zip(CSVS, [SPLIT_COLUMNS, CHEXPERT_COLUMNS, METADATA_COLUMNS,
                                    TRANSLATED_COLUMNS]):
        assert read_csv(jpg / name)[0] == columns, name


def test_layout_and_id_formats(jpg: Path, tables: dict[str, list[dict[str, str]]]) -> None:
    meta = tables["mimic-cxr-2.0.0-metadata.csv.gz"]
    dicom_ids = [row["dicom_id"] for row in meta]
    assert len(set(dicom_ids)) == len(dicom_ids)
    owner: dict[str, str] = {}
    for row in meta:
        assert re.fullmatch(r"1\d{7}", row["subject_id"])
        assert re.fullmatch(r"5\d{7}", row["study_id"])
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}", row["dicom_id"])
        assert owner.setdefault(row["study_id"], row["subject_id"]) == row["subject_id"]
        folder = study_folder(jpg, row["subject_id"], row["study_id"])
        assert (folder / f"{row['dicom_id']}.jpg").is_file()
        assert folder.with_name(folder.name + ".txt").is_file()
        assert re.fullmatch(r"2(1\d\d|200)(0[1-9]|1[0-2])\d\d", row["StudyDate"])
        assert re.fullmatch(r"([01]\d|2[0-3])[0-5]\d[0-5]\d\.\d{3}", row["StudyTime"])
    studies = {(r["subject_id"], r["study_id"]) for r in tables["mimic-cxr-2.0.0-chexpert.csv.gz"]}
    assert studies == {(r["subject_id"], r["study_id"]) for r in meta}
    per_patient = {}
    for subject, _ in studies:
        per_patient[subject] = per_patient.get(subject, 0) + 1
    assert len(per_patient) == 30 and set(per_patient.values()) <= {1, 2, 3}
    listed = (jpg / "IMAGE_FILENAMES").read_text().split()
    assert len(listed) == len(meta) and all((jpg / p).is_file() for p in listed)
    manifest = json.loads((jpg / "m3fed-synth.json").read_text())
    assert manifest["seed"] == 7 and manifest["patients"] == 30 and manifest["dicom"] is False
    assert manifest["summary"]["total_images"] == len(meta)


def test_reports_are_mimic_style(jpg: Path) -> None:
    reports = sorted((jpg / "files").rglob("s*.txt"))
    assert reports
    for path in reports:
        text = path.read_text(encoding="utf-8")
        assert all(len(line) <= 79 for line in text.splitlines())
        headers = ["FINAL REPORT", "EXAMINATION:", "INDICATION:", "TECHNIQUE:", "COMPARISON:",
                   "FINDINGS:", "IMPRESSION:"]
        positions = [text.index(header) for header in headers]
        assert positions == sorted(positions)
        assert "___" in text


def test_split_is_by_patient(tables: dict[str, list[dict[str, str]]]) -> None:
    rows = tables["mimic-cxr-2.0.0-split.csv.gz"]
    split_of: dict[str, set[str]] = {}
    for row in rows:
        split_of.setdefault(row["subject_id"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in split_of.values())
    counts = {s: sum(splits == {s} for splits in split_of.values())
              for s in ("train", "validate", "test")}
    assert counts["train"] in range(20, 24) and counts["validate"] in range(3, 6) \
        and counts["test"] in range(3, 6)  # ~70/15/15 of 30 patients
    assert {r["dicom_id"] for r in rows} == {
        r["dicom_id"] for r in tables["mimic-cxr-2.0.0-metadata.csv.gz"]}


def test_views_and_modalities(tables: dict[str, list[dict[str, str]]]) -> None:
    meta = tables["mimic-cxr-2.0.0-metadata.csv.gz"]
    views: dict[str, list[str]] = {}
    for row in meta:
        views.setdefault(row["study_id"], []).append(row["ViewPosition"])
        assert row["ProcedureCodeSequence_CodeMeaning"] == row["PerformedProcedureStepDescription"]
        assert row["ViewCodeSequence_CodeMeaning"] == {
            "PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral",
            "AXIAL": "axial"}[row["ViewPosition"]]
    kinds = {row["study_id"]: row["PerformedProcedureStepDescription"] for row in meta}
    for study, description in kinds.items():
        expected = {"CHEST (PA AND LAT)": [["PA", "LATERAL"]], "CHEST (PORTABLE AP)": [["AP"]],
                    "CT CHEST W/O CONTRAST": [["AXIAL"], ["AXIAL", "AXIAL"]]}[description]
        assert views[study] in expected
    ct_studies = [s for s, d in kinds.items() if d.startswith("CT")]
    assert 0.05 < len(ct_studies) / len(kinds) < 0.4


def test_images_match_metadata(jpg: Path, tables: dict[str, list[dict[str, str]]]) -> None:
    for row in tables["mimic-cxr-2.0.0-metadata.csv.gz"]:
        path = study_folder(jpg, row["subject_id"], row["study_id"]) / f"{row['dicom_id']}.jpg"
        with Image.open(path) as image:
            assert image.mode == "L"
            assert image.size == (int(row["Columns"]), int(row["Rows"])) == (128, 128)


def _sentences_en(text: str) -> list[str]:
    """FINDINGS and IMPRESSION sentences of an English report, lines unwrapped."""
    body = text.split("FINDINGS:", 1)[1].replace("IMPRESSION:", " ")
    return re.split(r"(?<=\.)\s+", " ".join(body.split()).strip())


def _sentences_zh(text: str) -> list[str]:
    body = text.replace("检查所见：", "").replace("印象：", "").replace("\n", "")
    return re.findall(r"[^。]+。", body)


def _kinds(label: str, language: str, sentences: list[str]) -> set[str]:
    phrases = PHRASES[language][label]
    return {kind for kind in ("positive", "negative", "uncertain")
            for phrase in getattr(phrases, kind) if phrase in sentences}


def test_labels_agree_with_both_reports(jpg: Path, tables: dict[str, list[dict[str, str]]]) -> None:
    zh = {(r["subject_id"], r["study_id"]): r for r in tables["translated-reports.csv.gz"]}
    assert {r["language"] for r in zh.values()} == {"zh"}
    for row in tables["mimic-cxr-2.0.0-chexpert.csv.gz"]:
        key = (row["subject_id"], row["study_id"])
        folder = study_folder(jpg, *key)
        en_text = folder.with_name(folder.name + ".txt").read_text(encoding="utf-8")
        zh_text = zh[key]["report"]
        assert zh_text.index("检查所见：") < zh_text.index("印象：")
        for language, sentences in (("en", _sentences_en(en_text)), ("zh", _sentences_zh(zh_text))):
            known = {p for label in CHEXPERT_LABELS if label in PHRASES[language]
                     for kind in ("positive", "negative", "uncertain")
                     for p in getattr(PHRASES[language][label], kind)}
            assert set(sentences) <= known, (language, sentences)
            for label in PATHOLOGIES:
                expected = {VALUE_KIND[row[label]]} if row[label] else set()
                assert _kinds(label, language, sentences) == expected, (key, label, language)
            normal = PHRASES[language]["No Finding"].positive[0] in sentences
            assert row["No Finding"] == ("1.0" if normal else "")
        flagged = any(row[label] in ("1.0", "-1.0") for label in PATHOLOGIES)
        assert not (row["No Finding"] and flagged)
        opacity = any(row[label] == "1.0" for label in OPACITY)
        assert row["Lung Opacity"] == ("1.0" if opacity else "")


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for out, seed in zip(runs, (3, 3, 4)):
        generate(out, patients=12, seed=seed)
    files = sorted(p.relative_to(runs[0]) for p in runs[0].rglob("*") if p.is_file())
    assert any(p.suffix == ".jpg" for p in files) and any(p.suffix == ".txt" for p in files)
    for rel in files:
        assert (runs[0] / rel).read_bytes() == (runs[1] / rel).read_bytes(), rel
    for name in CSVS:
        assert (runs[0] / name).read_bytes() != (runs[2] / name).read_bytes()


def test_dicom_variant(tmp_path: Path) -> None:
    generate(tmp_path / "dcm", patients=10, seed=5, dicom=True)
    generate(tmp_path / "jpg", patients=10, seed=5)
    _, meta = read_csv(tmp_path / "dcm" / "mimic-cxr-2.0.0-metadata.csv.gz")
    photometric = set()
    for row in meta:
        folder = study_folder(tmp_path / "dcm", row["subject_id"], row["study_id"])
        ds = pydicom.dcmread(folder / f"{row['dicom_id']}.dcm")
        assert (ds.PatientID, ds.StudyID, ds.AccessionNumber) == (
            row["subject_id"], row["study_id"], row["study_id"])
        assert ds.ViewPosition == row["ViewPosition"]
        assert (ds.Rows, ds.Columns) == (int(row["Rows"]), int(row["Columns"]))
        stored = ds.pixel_array.astype(np.float64)
        jpeg_path = study_folder(tmp_path / "jpg", row["subject_id"], row["study_id"])
        with Image.open(jpeg_path / f"{row['dicom_id']}.jpg") as image:
            shown = np.asarray(image, dtype=np.float64) / 255.0
        if row["PerformedProcedureStepDescription"].startswith("CT"):
            assert ds.Modality == "CT"
            assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
            hu = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert hu.min() < -900 and hu.max() > 400  # air outside the body, bone in the spine
            display = np.clip((hu - (float(ds.WindowCenter) - float(ds.WindowWidth) / 2))
                              / float(ds.WindowWidth), 0, 1)
        else:
            assert ds.Modality == "DX" and ds.BitsStored == 12
            photometric.add(ds.PhotometricInterpretation)
            display = stored / 4095.0
            if ds.PhotometricInterpretation == "MONOCHROME1":
                display = 1.0 - display
        assert np.abs(display - shown).mean() < 0.02  # same picture as the JPEG variant
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth_traces")
    generate(out, patients=80, seed=11)
    return out


# Where each finding's trace lies in a 128-px frontal radiograph (rows, columns), and whether it
# brightens (+1) or darkens (-1) the region. Image right is the patient's left.
FRONTAL_REGIONS = {
    "Pleural Effusion": ((82, 98), (92, 108), +1),  # left costophrenic angle
    "Cardiomegaly": ((80, 92), (86, 94), +1),  # beyond the normal heart border
    "Consolidation": ((70, 88), (20, 44), +1),  # right lower zone
    "Lung Lesion": ((38, 48), (88, 98), +1),  # left upper zone
    "Support Devices": ((4, 30), (62, 68), +1),  # trachea
    "Edema": ((50, 72), (42, 54), +1),  # right perihilar
    "Atelectasis": ((80, 90), (84, 104), +1),  # left base
    "Pneumothorax": ((28, 56), (22, 32), -1),  # right upper zone, lateral
    "Fracture": ((60, 72), (96, 102), -1),  # the gap in the 4th left rib
}


def _region_effects(root: Path, regions: dict, views: set[str]) -> dict[str, float]:
    _, meta = read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz")
    _, labels = read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz")
    row_of = {r["study_id"]: r for r in labels}
    images, rows = [], []
    for row in meta:
        if row["ViewPosition"] in views:
            path = study_folder(root, row["subject_id"], row["study_id"]) / f"{row['dicom_id']}.jpg"
            images.append(np.asarray(Image.open(path), dtype=np.float64) / 255.0)
            rows.append(row_of[row["study_id"]])
    stack = np.stack(images)
    effects = {}
    for label, ((r0, r1), (c0, c1), sign) in regions.items():
        values = stack[:, r0:r1, c0:c1].mean(axis=(1, 2))
        positive = np.array([r[label] == "1.0" for r in rows])
        negative = np.array([r[label] in ("", "0.0") for r in rows])
        assert positive.sum() >= 3 and negative.sum() >= 3, label
        effects[label] = sign * (values[positive].mean() - values[negative].mean())
    return effects


def test_frontal_traces_are_visible(traces: Path) -> None:
    effects = _region_effects(traces, FRONTAL_REGIONS, {"PA", "AP"})
    assert all(effect > 0.02 for effect in effects.values()), effects


def test_ct_traces_are_visible(traces: Path) -> None:
    regions = {"Pleural Effusion": ((88, 104), (84, 104), +1),  # left, posterior (dependent)
               "Consolidation": ((70, 88), (22, 44), +1)}  # right lower lobe
    effects = _region_effects(traces, regions, {"AXIAL"})
    assert all(effect > 0.02 for effect in effects.values()), effects
