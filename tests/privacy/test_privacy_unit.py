"""The privacy unit is what the statement says: a study at record level, a patient at patient level,
and ``max_records_per_patient`` (studies per patient) enforced on the data (privacy/sampling.py)."""
from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from client.app.site_privacy import units_of
from client.data.dataset import Examples
from client.data.sources import load_records
from client.data.sources.records import DataReport, Record
from privacy.sampling import cap_studies_per_patient, privacy_units, training_rows


def examples_of(records: list[Record]) -> Examples:
    """Records as Examples without decoding: one image row per distinct image path (not read here)."""
    rows: dict[str, int] = {}
    index = [rows.setdefault(r.image, len(rows)) if r.image else -1 for r in records]
    return Examples(records, torch.tensor(index), torch.zeros(0, 1, 8, 8, dtype=torch.uint8))


@pytest.fixture(scope="module")
def mimic(small_mimic) -> Examples:
    records, _ = load_records(small_mimic)  # English and the Chinese translations: one row per image and language
    return examples_of([r for r in records if r.split == "train"])


@pytest.mark.parametrize("objective", ["contrastive", "report-generation"])
def test_mimic_record_level_units_are_studies_with_all_their_images_and_translations(mimic, objective):
    # Prepare
    studies = {(r.patient_id, r.study_id) for r in mimic.records}
    # Execute
    units = privacy_units(mimic, objective, unit="record")
    # Assert: one unit per study, holding every row of it the objective trains on.
    assert units_of(mimic, objective, "record") == len(units) == len(studies)
    keys = [{(mimic.records[i].patient_id, mimic.records[i].study_id) for i in u} for u in units]
    assert all(len(k) == 1 for k in keys) and {k.pop() for k in keys} == studies
    sizes = Counter(len(u) for u in units)
    assert max(sizes) > 1  # the loader's per-image and per-language rows: several per study here
    if objective == "contrastive":
        assert sum(len(u) for u in units) == len(mimic.records)  # every image-report pair trains
    else:  # each study's report once per language, whatever its number of images
        languages = {(r.patient_id, r.study_id, r.language) for r in mimic.records}
        assert sum(len(u) for u in units) == len(languages) < len(mimic.records)


def test_patient_level_units_are_patients_with_all_their_studies(mimic):
    patients = {r.patient_id for r in mimic.records}
    units = privacy_units(mimic, "report-generation", unit="patient")
    assert units_of(mimic, "report-generation", "patient") == len(units) == len(patients)
    assert sum(len(u) for u in units) == len(training_rows(mimic, "report-generation"))


def record(patient: str, study: str, image: str | None, language: str = "en") -> Record:
    return Record(patient_id=patient, study_id=study, image=image, report=f"report of {study} ({language})",
                  language=language, split="train", modality="CXR")


def capped_site() -> list[Record]:
    """p0: studies 9, 10 and 200 (200 has 2 images); p1: study 7 in two languages; p2: 3 and 4."""
    return [record("p0", "200", "a.png"), record("p0", "200", "b.png"), record("p0", "10", "c.png"),
            record("p0", "9", None), record("p1", "7", "d.png"), record("p1", "7", "d.png", "zh"),
            record("p2", "4", "e.png"), record("p2", "3", "f.png")]


def test_max_records_per_patient_drops_the_studies_past_the_bound_and_counts_them():
    # Prepare
    report = DataReport(source="test")
    # Execute: at most 1 study per patient... then 2.
    one, cap1 = cap_studies_per_patient(examples_of(capped_site()), 1, report=report)
    two, cap2 = cap_studies_per_patient(examples_of(capped_site()), 2)
    # Assert: each patient keeps its lowest study ids (numbers compared as numbers: 9 < 10 < 200).
    assert sorted({(r.patient_id, r.study_id) for r in one.records}) == [("p0", "9"), ("p1", "7"), ("p2", "3")]
    assert (cap1.patients_over, cap1.studies_dropped, cap1.rows_dropped) == (2, 3, 4)
    assert sorted({(r.patient_id, r.study_id) for r in two.records}) == [
        ("p0", "10"), ("p0", "9"), ("p1", "7"), ("p2", "3"), ("p2", "4")]
    assert (cap2.patients_over, cap2.studies_dropped, cap2.rows_dropped) == (1, 1, 2)
    assert cap2.to_dict() == {"max_studies_per_patient": 2, "patients_over": 1, "studies_dropped": 1,
                              "rows_dropped": 2}
    # Each dropped study is in the site's data report, counted under one reason.
    assert [path for path, _ in report.skipped] == ["patient p0 study 10", "patient p0 study 200",
                                                    "patient p2 study 4"]
    assert report.summary(one.records)["skipped_reasons"] == {"over max_records_per_patient": 3}
    # The surviving rows keep their images; the units now number at most 1 (then 2) per patient.
    assert [one.image_index[i].item() >= 0 for i in range(len(one.records))] == [r.image is not None
                                                                               for r in one.records]
    assert units_of(one, "report-generation", "record") == 3 and units_of(two, "report-generation", "record") == 5


def test_the_cap_does_not_depend_on_the_order_of_the_rows():
    rows = capped_site()
    kept = []
    for seed in range(5):
        random.Random(seed).shuffle(rows)
        capped, _ = cap_studies_per_patient(examples_of(list(rows)), 2)
        kept.append(sorted({(r.patient_id, r.study_id) for r in capped.records}))
    assert all(k == kept[0] for k in kept)


def test_no_bound_or_a_bound_no_patient_reaches_drops_nothing():
    ex = examples_of(capped_site())
    for bound in (None, 3):
        capped, cap = cap_studies_per_patient(ex, bound)
        assert capped is ex and (cap.studies_dropped, cap.rows_dropped) == (0, 0)
    with pytest.raises(ValueError, match="max_records_per_patient"):
        cap_studies_per_patient(ex, 0)
