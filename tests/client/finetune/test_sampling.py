"""Which training records a fine-tuning run may use: whole patients, an exact seeded fraction."""
from __future__ import annotations

import pytest

from client.data.sources.records import Record
from client.finetune.sampling import sample_summary, sampled_patients


def _records(patients: int = 40) -> list[Record]:
    # 1 to 4 records per patient, so a sample by record count would differ from one by patient.
    return [Record(patient_id=f"p{p:03d}", study_id=f"s{p}-{k}", image=f"/x/{p}-{k}.jpg", report="r",
                   language="en", split="train", modality="CXR")
            for p in range(patients) for k in range(1 + p % 4)]


@pytest.mark.parametrize("fraction, expected", [(0.1, 4), (0.25, 10), (0.5, 20), (1.0, 40), (0.001, 1)])
def test_exactly_the_fraction_of_patients_is_sampled(fraction, expected):
    records = _records()
    chosen = sampled_patients(records, fraction, seed=0)
    assert len(chosen) == len(set(chosen)) == expected
    summary = sample_summary(records, chosen, fraction, seed=0)
    # Every record of a sampled patient, and none of the others.
    assert summary["records"] == sum(r.patient_id in set(chosen) for r in records)
    assert summary["patients"] == expected and summary["of_patients"] == 40


def test_the_sample_is_seeded_and_smaller_fractions_nest_in_larger_ones():
    records = _records()
    assert sampled_patients(records, 0.1, seed=3) == sampled_patients(list(reversed(records)), 0.1, seed=3)
    assert sampled_patients(records, 0.1, seed=3) != sampled_patients(records, 0.1, seed=4)
    assert set(sampled_patients(records, 0.1, seed=3)) <= set(sampled_patients(records, 0.5, seed=3))
    assert sorted(sampled_patients(records, 1.0, seed=3)) == sorted({r.patient_id for r in records})
