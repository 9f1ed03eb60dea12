"""Evaluation inputs (client/data/evaldata.py): a big split's seeded sample of whole patients."""
from __future__ import annotations

from client.data.evaldata import sampled_records
from client.data.sources.records import Record


def _records(per_patient: dict[str, int]) -> list[Record]:
    return [Record(image=f"{p}-{i}.jpg", report="r", language="en", split="test", patient_id=p, study_id=f"{p}-s", modality="CXR",
                   labels={}) for p, n in per_patient.items() for i in range(n)]


def test_a_sample_keeps_whole_patients_under_the_limit_in_the_original_order():
    records = _records({f"p{i}": 1 + i % 3 for i in range(40)})
    sample = sampled_records(records, 15, seed=0)
    assert 10 <= len(sample) <= 15  # filled close to the limit, never over
    kept = {r.patient_id for r in sample}
    assert all((r in sample) == (r.patient_id in kept) for r in records)  # never half of a patient's images
    assert sample == [r for r in records if r in sample]
    assert sampled_records(records, 15, seed=0) == sample and sampled_records(records, 15, seed=1) != sample
    assert sampled_records(records, 0, seed=0) == records and sampled_records(records, 500, seed=0) == records
    # One patient larger than the limit still gives a sample to score, rather than nothing.
    assert len(sampled_records(_records({"big": 9}), 4, seed=0)) == 9
