"""Canary audit of the DP step (privacy.md §9): an empirical LOWER bound on μ that must stay under the claim.

One DP-SGD step of ``privacy.dp.private_module`` (Opacus GradSampleModule + UnitDPOptimizer, the
wrapper ``private_update`` uses) on a bias-free ``Linear(D, 1)`` with loss mean_i(w·x_i): the
per-sample gradient of row i is exactly x_i, so the rows ARE the canary gradients. 500 random
canaries (norm 2C, so clipping is exercised) go in, 500 stay out; the released noised clipped sum
is scored by cosine with each canary. μ̂ = (mean cos_in − mean cos_out) / sd_out reads as μ-GDP,
with 95 % lower bound μ̂ − 1.96·√(1/n_in + 1/n_out). One Gaussian step with sensitivity C and
noise σC is μ = 1/σ-GDP. A lower bound above the claim proves a bug; staying below proves nothing.
"""
from __future__ import annotations

import math

import opacus.optimizers.optimizer as opacus_optimizer
import pytest
import torch
import torch.nn.functional as F

import privacy.dp as dp
from privacy.dp import private_module

D, N_IN, N_OUT = 20_000, 500, 500
SIGMA, C = 1.0, 1.0
CLAIM_MU = 1.0 / SIGMA
SEEDS = (0, 1, 2)



def audit(seed: int, *, records_per_unit: int = 1) -> tuple[float, float]:
    """(μ̂, 95 % lower bound) for one DP step with N_IN canary units inserted and N_OUT held out."""
    gen = torch.Generator().manual_seed(seed)
    canaries = torch.randn(N_IN + N_OUT, D, generator=gen)
    canaries = 2 * C * canaries / canaries.norm(dim=1, keepdim=True)
    inserted, held_out = canaries[:N_IN], canaries[N_IN:]
    # A patient canary is split over its records: each record carries an equal share of it.
    rows = inserted.repeat_interleave(records_per_unit, 0) / records_per_unit
    row_units = (torch.arange(len(rows)) // records_per_unit, N_IN)
    layer = torch.nn.Linear(D, 1, bias=False)
    torch.nn.init.zeros_(layer.weight)
    with private_module(layer, torch.optim.SGD(layer.parameters(), lr=0.0), noise_multiplier=SIGMA,
                        max_grad_norm=C, expected_batch_size=N_IN, rows=lambda: row_units,
                        noise_generator=torch.Generator().manual_seed(10_000 + seed)) as optimizer:
        optimizer.zero_grad()
        layer(rows).mean().backward()
        optimizer.pre_step()  # clip, sum, noise, scale: what the optimiser applies
        release = layer.weight.grad.flatten() * N_IN  # back to the noised clipped sum
    cos_in = F.cosine_similarity(inserted, release[None], dim=1)
    cos_out = F.cosine_similarity(held_out, release[None], dim=1)
    mu_hat = float((cos_in.mean() - cos_out.mean()) / cos_out.std())
    return mu_hat, mu_hat - 1.96 * math.sqrt(1 / N_IN + 1 / N_OUT)


@pytest.mark.parametrize("seed", SEEDS)
def test_real_noise_stays_under_the_claimed_mu(seed):
    # Execute
    mu_hat, lower = audit(seed)
    # Assert: no evidence against μ = 1/σ (the point estimate sits near the claim, as it should).
    assert lower <= CLAIM_MU
    assert mu_hat == pytest.approx(CLAIM_MU, abs=0.25)


@pytest.mark.parametrize("seed", SEEDS)
def test_noise_ten_times_too_small_is_flagged(seed, monkeypatch):
    # Prepare: the bug, injected into Opacus' noise draw that DPOptimizer.add_noise calls.
    real = opacus_optimizer._generate_noise
    monkeypatch.setattr(opacus_optimizer, "_generate_noise",
                        lambda std, reference, **kw: real(std / 10, reference, **kw))
    # Execute
    _, lower = audit(seed)
    # Assert: the audit's lower bound is far above the claim.
    assert lower > 3 * CLAIM_MU


def test_patient_canaries_clipped_as_one_unit_stay_under_the_claim():
    # Prepare: each canary patient has 2 records carrying half its gradient (norm C each, sum 2C).
    # Execute
    _, lower = audit(0, records_per_unit=2)
    # Assert: the patient's summed gradient was clipped to C, so μ ≤ 1/σ still.
    assert lower <= CLAIM_MU


def test_patient_records_clipped_one_by_one_is_flagged(monkeypatch):
    # Prepare: the bug of clipping records, not patients (each row its own unit).
    real = dp.sum_rows_by_unit
    monkeypatch.setattr(dp, "sum_rows_by_unit",
                        lambda opt, row_units, n: real(opt, torch.arange(len(row_units)), len(row_units)))
    # Execute
    _, lower = audit(0, records_per_unit=2)
    # Assert: each patient moved the sum by 2C, μ ≈ 2/σ: detected.
    assert lower > 1.5 * CLAIM_MU
