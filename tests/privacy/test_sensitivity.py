"""Sensitivity of the clipped gradient sum: adding or removing one unit moves it by at most C.

DP-SGD's noise N(0, σ²C²) only buys (ε, δ) if one record (or patient) changes the sum of clipped
gradients by at most C. Noise is off here (σ = 0), so the sums are compared exactly. The plain
in-batch-negatives loss must FAIL the same check: removing one example changes the others' terms.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from privacy.dp import objective_parameters, private_module
from privacy.dp_losses import dp_contrastive_loss, finding_phrases
from privacy.sampling import privacy_units
from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.objectives import TrainConfig, contrastive_loss, lm_per_example_loss
from tests.privacy.test_dp import study_site

C = 0.05  # small enough that every example's gradient is clipped: the bound is then tight
CPU = torch.device("cpu")
PUBLIC = finding_phrases()
# Distinct private-looking reports (two public phrases each, so none equals a bank entry).
REPORTS = [f"{PUBLIC[i]} {PUBLIC[-1 - 3 * i]}" for i in range(8)]



@pytest.fixture(scope="module")
def model():
    # The tiny preset's architecture (ViT, BERT towers, tied LM head) with one layer each: same
    # Opacus code paths, a fraction of the CPU time.
    torch.manual_seed(0)
    cfg = dataclasses.replace(get_preset("tiny"), vit_depth=1, text_layers=1, lm_encoder_layers=1,
                              lm_decoder_layers=1)
    m = build_model(cfg)
    with torch.no_grad():  # a trained CLIP's temperature (the clamp, 100): sharp softmax, strong coupling
        m.clip.logit_scale.fill_(math.log(100.0))
    return m


def clipped_sum(module, loss_of_rows, row_units: list[int]):
    """(Σ_units clip_C(g_unit), rel. error of Σ_rows grad_sample vs n·∇mean-loss): real DP wrapper, σ = 0."""
    units = torch.tensor(row_units)
    n_units = int(units.max()) + 1
    params = [p for p in module.parameters() if p.requires_grad]
    with private_module(module, torch.optim.SGD(params, lr=0.0), noise_multiplier=0.0, max_grad_norm=C,
                        expected_batch_size=1, rows=lambda: (units, n_units)) as dp:
        dp.zero_grad(set_to_none=True)
        loss_of_rows().backward()
        # Per-sample gradients are right if they add up to the batch gradient of the summed loss.
        per_sample = torch.cat([p.grad_sample.sum(0).flatten() for p in dp.params])
        batch = len(row_units) * torch.cat([p.grad.flatten() for p in dp.params])
        mismatch = float((per_sample - batch).norm() / batch.norm())
        dp.pre_step()
        return torch.cat([p.summed_grad.flatten() for p in dp.params]), mismatch


def contrastive_changes(model, loss, removals: list[list[int]], row_units: list[int], *, layers: str = "all",
                        texts: list[str] | None = None, images: torch.Tensor | None = None):
    """‖clipped sum(batch) − clipped sum(batch minus `removed`)‖ per removal, and the full batch's mismatch."""
    n = len(row_units)
    texts = REPORTS[:n] if texts is None else texts
    if images is None:
        images = torch.rand(n, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    changes = []
    with objective_parameters(model, "contrastive", public_texts=PUBLIC, train=TrainConfig(), device=CPU,
                              layers=layers) as clip:
        full, mismatch = clipped_sum(clip, lambda: loss(model, images, texts), row_units)
        for removed in removals:
            keep = [i for i in range(n) if i not in removed]
            kept_units = [row_units[i] for i in keep]
            relabel = {u: k for k, u in enumerate(dict.fromkeys(kept_units))}
            less, _ = clipped_sum(clip, lambda: loss(model, images[keep], [texts[i] for i in keep]),
                                  [relabel[u] for u in kept_units])
            changes.append(float((full - less).norm()))
    return changes, mismatch


def lm_change(model, removed: list[int], row_units: list[int], *, texts: list[str] | None = None,
              languages: list[str] | None = None):
    texts = REPORTS[:len(row_units)] if texts is None else texts
    languages = ["en"] * len(texts) if languages is None else languages
    keep = [i for i in range(len(texts)) if i not in removed]
    kept_units = [row_units[i] for i in keep]
    relabel = {u: k for k, u in enumerate(dict.fromkeys(kept_units))}

    def loss(rows):
        # DeCap noise off: it is drawn per batch position, so a removal would reshuffle it (σ = 0 test only).
        return lambda: lm_per_example_loss(model, [texts[i] for i in rows], [languages[i] for i in rows],
                                           noise_std=0.0, device=CPU).mean()

    with objective_parameters(model, "report-generation", public_texts=PUBLIC, train=TrainConfig(),
                              device=CPU) as lm:
        full, mismatch = clipped_sum(lm, loss(range(len(texts))), row_units)
        less, _ = clipped_sum(lm, loss(keep), [relabel[u] for u in kept_units])
    return float((full - less).norm()), mismatch


@pytest.mark.parametrize("layers", ["all", "top"])
def test_dp_contrastive_loss_removing_any_one_example_moves_the_clipped_sum_by_at_most_c(model, layers):
    # Prepare
    loss = dp_contrastive_loss(PUBLIC)
    # Execute: remove each of 6 examples in turn.
    changes, mismatch = contrastive_changes(model, loss, [[j] for j in range(6)], row_units=list(range(6)),
                                            layers=layers)
    # Assert: exactly the removed example's clipped gradient (norm C) each time, nothing else moved.
    assert max(changes) <= C * (1 + 1e-4)
    assert changes == pytest.approx([C] * 6, rel=1e-3)
    assert mismatch < 1e-4  # and Opacus' per-sample rows add up to the batch gradient


def test_in_batch_negatives_loss_breaks_the_bound(model):
    # Prepare: the shared training loss, whose per-row gradients mix in the other examples.
    # Execute: the same check, same batch, same clipping.
    changes, _ = contrastive_changes(model, contrastive_loss, [[j] for j in range(6)], row_units=list(range(6)))
    # Assert: some removal moves the clipped sum well past C, so the check above can fail.
    assert max(changes) > 1.5 * C


def test_lm_loss_removing_any_one_example_moves_the_clipped_sum_by_at_most_c(model):
    for removed in (0, 4):
        change, mismatch = lm_change(model, [removed], row_units=list(range(6)))
        assert change <= C * (1 + 1e-4)
        assert change == pytest.approx(C, rel=1e-3)
        assert mismatch < 1e-4


def test_patient_unit_removing_one_patient_with_several_records_moves_the_sum_by_at_most_c(model):
    # Prepare: 8 records of 4 patients; patient 1 has three records.
    row_units = [0, 0, 1, 1, 1, 2, 3, 3]
    # Execute
    change, _ = lm_change(model, [2, 3, 4], row_units)
    # Assert: one patient's summed gradient was clipped as one unit, whatever its record count.
    assert change <= C * (1 + 1e-4)
    assert change == pytest.approx(C, rel=1e-3)


def test_patient_unit_on_the_contrastive_loss(model):
    # Prepare: 5 records of 3 patients; remove each patient with all its records.
    row_units = [0, 1, 1, 2, 2]
    # Execute
    changes, _ = contrastive_changes(model, dp_contrastive_loss(PUBLIC), [[0], [1, 2], [3, 4]], row_units)
    # Assert
    assert changes == pytest.approx([C] * 3, rel=1e-3)
    assert max(changes) <= C * (1 + 1e-4)


def unit_rows(ex, objective):
    """The rows a DP round trains on, unit by unit, and each row's unit (as PoissonBatches lays them out)."""
    units = privacy_units(ex, objective, unit="record")
    rows = [r for u in units for r in u]
    return units, rows, [j for j, u in enumerate(units) for _ in u]


def test_record_unit_is_the_study_removing_a_three_image_study_moves_the_contrastive_sum_by_at_most_c(model):
    # Prepare: the site's contrastive rows as the DP round would batch them, and each study's rows.
    ex = study_site()
    units, rows, row_units = unit_rows(ex, "contrastive")
    texts = [ex.records[r].report for r in rows]
    images = ex.image_float(ex.image_index[rows])
    studies: dict[str, list[int]] = {}
    for k, r in enumerate(rows):
        studies.setdefault(ex.records[r].study_id, []).append(k)
    # Execute: remove each study, with all its image-report pairs.
    changes, _ = contrastive_changes(model, dp_contrastive_loss(PUBLIC), list(studies.values()), row_units,
                                     texts=texts, images=images)
    # Assert: the 3-image, 2-language study (6 pairs) moved the sum by C, not up to 6C; 4 studies, 4 units.
    assert max(changes) <= C * (1 + 1e-4)
    assert changes == pytest.approx([C] * 4, rel=1e-3)
    assert len(units) == 4 and sorted(len(u) for u in units) == [1, 1, 2, 6]


def test_record_unit_is_the_study_its_report_trains_once_per_language(model):
    # Prepare: report generation on the same site: study 1's 3 image copies of each report are one row.
    ex = study_site()
    units, rows, row_units = unit_rows(ex, "report-generation")
    texts = [ex.records[r].report for r in rows]
    languages = [ex.records[r].language for r in rows]
    removed = [k for k, r in enumerate(rows) if ex.records[r].study_id == "1"]
    # Execute: remove study 1 (its English and its Chinese report).
    change, mismatch = lm_change(model, removed, row_units, texts=texts, languages=languages)
    # Assert
    assert change <= C * (1 + 1e-4) and change == pytest.approx(C, rel=1e-3)
    assert mismatch < 1e-4
    assert len(rows) == 5 and len(removed) == 2 and sorted(languages) == ["en"] * 4 + ["zh"]
