"""Sampling of a DP round (privacy/sampling.py): planned steps, patients kept whole, physical batches, filler."""
from __future__ import annotations

import pytest
import torch

from privacy.sampling import PoissonBatches, planned_steps, privacy_units
from tests.privacy.test_dp import PUBLIC, site, study_site


def test_planned_steps_are_an_integer_ceiling_and_q_is_batch_over_units():
    assert planned_steps(5000, batch_size=64, epochs=1) == (79, 64 / 5000)
    assert planned_steps(10, batch_size=4, epochs=3) == (8, 0.4)
    with pytest.raises(ValueError, match="exceeds"):
        planned_steps(3, batch_size=4, epochs=1)


def test_patient_sampling_takes_all_records_of_a_patient_and_maps_rows_to_patients():
    # Prepare
    ex = site(patients=10)
    units = privacy_units(ex, "report-generation", unit="patient")
    batches = PoissonBatches(ex, units, objective="report-generation", sample_rate=0.3, steps=200,
                             generator=torch.Generator().manual_seed(0), filler_text=PUBLIC[0])
    sizes = []
    for texts, _ in batches:
        # Execute: what the optimizer will read for this batch.
        row_units, n_units = batches.current()
        real = row_units >= 0
        sizes.append(n_units)
        # Assert: rows of one unit are one patient's records, and that patient's all of them.
        by_unit: dict[int, set[str]] = {}
        for row, unit in enumerate(row_units.tolist()):
            if unit >= 0:
                by_unit.setdefault(unit, set()).add(texts[row])
        assert len(by_unit) == n_units
        for reports in by_unit.values():
            assert any(reports == {ex.records[i].report for i in u} for u in units)
        assert int(real.sum()) == len(texts) or n_units == 0
    assert sum(sizes) / len(sizes) == pytest.approx(0.3 * len(units), rel=0.15)  # Poisson(q) per patient
    assert 0 in sizes  # empty samples happen, and still yield a (filler) batch


@pytest.mark.parametrize("unit", ["record", "patient"])
def test_a_report_sample_goes_as_length_sorted_physical_batches_of_whole_units(unit):
    # Prepare: the same Poisson draws whole and split into physical batches of at most 6 rows.
    ex = site(patients=20)
    units = privacy_units(ex, "report-generation", unit=unit)

    def batches(physical_rows):
        return PoissonBatches(ex, units, objective="report-generation", sample_rate=0.5, steps=20,
                              generator=torch.Generator().manual_seed(0), filler_text=PUBLIC[0],
                              physical_rows=physical_rows)

    whole = [sorted(texts) for texts, _ in batches(0)]
    split, signals, steps = batches(6), [], []
    split.skip = signals.append
    # Execute
    for texts, _ in split:
        row_units, n_units = split.current()
        if len(signals) == 1 or not signals[-2]:  # the previous part ended a step
            steps.append([])
        steps[-1].append((texts, row_units.tolist(), n_units))
    # Assert: each step's parts hold exactly the whole sample, every part but the last skips the
    # optimizer step, parts stay within 6 rows and grow in report length, and no unit is split.
    assert len(steps) == 20 and len(signals) == sum(len(parts) for parts in steps)
    assert any(len(parts) > 1 for parts in steps)
    k = 0
    for parts, sample in zip(steps, whole):
        assert signals[k:k + len(parts)] == [True] * (len(parts) - 1) + [False]
        k += len(parts)
        assert sorted(t for texts, _, _ in parts for t in texts) == sample
        lengths = [max(len(t) for t in texts) for texts, _, _ in parts]
        assert lengths == sorted(lengths)
        for texts, row_units, n_units in parts:
            assert len(texts) <= 6 and sorted(set(row_units)) == list(range(n_units))
            for j in range(n_units):
                reports = {t for t, u in zip(texts, row_units) if u == j}
                assert any(reports == {ex.records[i].report for i in u} for u in units)


def test_empty_contrastive_sample_is_padded_to_a_step_with_no_private_rows():
    # Prepare: q tiny, so the samples are almost all empty.
    ex = site()
    units = privacy_units(ex, "contrastive", unit="record")
    batches = PoissonBatches(ex, units, objective="contrastive", sample_rate=1e-9, steps=3,
                             generator=torch.Generator().manual_seed(0), filler_text=PUBLIC[0])
    # Execute
    out = list(batches)
    # Assert: each still a batch contrastive_epoch will step on (>= 2 rows), all filler.
    assert len(out) == 3
    for images, texts in out:
        assert len(texts) == 2 and texts == [PUBLIC[0]] * 2 and float(images.abs().sum()) == 0.0
    row_units, n_units = batches.current()
    assert n_units == 0 and row_units.tolist() == [-1, -1]  # filler rows: dropped before clipping


def test_a_record_level_sample_takes_every_row_of_a_study_together():
    # Prepare: a site whose studies have several images and a translation (tests/privacy/test_sensitivity.py).
    ex = study_site()
    units = privacy_units(ex, "contrastive", unit="record")
    batches = PoissonBatches(ex, units, objective="contrastive", sample_rate=0.5, steps=40,
                             generator=torch.Generator().manual_seed(0), filler_text=PUBLIC[0])
    study_rows = {}
    for i, r in enumerate(ex.records):
        study_rows.setdefault((r.patient_id, r.study_id), set()).add((r.report, r.image))
    seen = set()
    for images, texts in batches:
        # Execute: what the optimizer clips as one unit in this sample.
        row_units, n_units = batches.current()
        pairs: dict[int, set] = {}
        for row, unit in enumerate(row_units.tolist()):
            if unit >= 0:
                pairs.setdefault(unit, set()).add((texts[row], float(images[row].sum())))
        # Assert: each unit is one whole study, every image with every report of it.
        assert len(pairs) == n_units
        for got in pairs.values():
            match = [key for key, rows in study_rows.items() if len(rows) == len(got)
                     and {t for t, _ in got} == {t for t, _ in rows}]
            assert match, got
            seen.add(match[0])
    assert len(units) == len(study_rows) == 4 and seen == set(study_rows)


def test_fast_path_every_study_one_row_keeps_the_identity_row_map():
    # Prepare: single-image studies (the default test site): one row per unit, in order.
    ex = site()
    units = privacy_units(ex, "report-generation", unit="record")
    batches = PoissonBatches(ex, units, objective="report-generation", sample_rate=0.5, steps=5,
                             generator=torch.Generator().manual_seed(0), filler_text=PUBLIC[0])
    # Execute / Assert: the map sum_rows_by_unit recognises as "no sum to take".
    assert all(len(u) == 1 for u in units)
    for _ in batches:
        row_units, n_units = batches.current()
        assert row_units[:n_units].tolist() == list(range(n_units))
