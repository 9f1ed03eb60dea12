"""privacy.accounting against independent accountants (Google dp-accounting, Microsoft prv-accountant).

Oracles and tolerances follow privacy.md §6. Golden values are computed here by those libraries,
never typed in.
"""
from __future__ import annotations

import math

import dp_accounting
import prv_accountant as msprv
import pytest
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant
from scipy import integrate

from privacy import accounting
from privacy.accounting import (
    PRV_EPS_ERROR,
    AccountingError,
    PrivacyBudgetExhausted,
    accountant_version,
    calibrate_noise,
    epsilon,
)

# (segments [(σ, q, steps)], δ): realistic DP-SGD settings, few-step cross-silo rounds, Opacus's
# 2249-step PRV example, σ < 1, and σ or q changing mid-run.
GRID = [
    ([(1.0, 0.01, 1000)], 1e-5),
    ([(1.5, 0.05, 200)], 1e-5),
    ([(2.0, 0.1, 5)], 1e-5),
    ([(1.1, 0.004, int(90 // 0.04))], 1e-5),
    ([(3.0, 0.05, 50)], 1e-6),
    ([(0.8, 0.02, 500)], 1e-6),
    ([(1.0, 0.01, 300), (1.5, 0.01, 700)], 1e-5),
    ([(1.2, 0.02, 200), (1.2, 0.01, 300), (2.0, 0.01, 100)], 1e-6),
]


def google_event(segments):
    return dp_accounting.ComposedDpEvent([
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(sampling_probability=q,
                                                event=dp_accounting.GaussianDpEvent(noise_multiplier=sigma)), steps)
        for sigma, q, steps in segments])


def google_pld(segments, delta):
    acc = PLDAccountant(value_discretization_interval=1e-3)
    acc.compose(google_event(segments))
    return acc.get_epsilon(delta)


def google_rdp(segments, delta):
    acc = RdpAccountant()
    acc.compose(google_event(segments))
    return acc.get_epsilon(delta)


def microsoft_prv(segments, delta):
    prvs = [msprv.PoissonSubsampledGaussianMechanism(noise_multiplier=s, sampling_probability=q)
            for s, q, _ in segments]
    steps = [t for _, _, t in segments]
    acc = msprv.PRVAccountant(prvs=prvs, max_self_compositions=steps, eps_error=PRV_EPS_ERROR,
                              delta_error=delta / 1000)
    return acc.compute_epsilon(delta=delta, num_self_compositions=steps)  # (lower, estimate, upper)


@pytest.mark.parametrize("segments, delta", GRID)
def test_prv_agrees_with_microsoft_and_google_pld(segments, delta):
    # Execute
    ours = epsilon(segments, delta=delta, accountant="prv")
    ms_low, ms_est, ms_up = microsoft_prv(segments, delta)
    pld = google_pld(segments, delta)
    # Assert: same algorithm as Microsoft's upper bound; the estimates agree with PLD to 0.01.
    assert ours == pytest.approx(ms_up, abs=1e-6)
    assert abs(ms_est - pld) <= 0.01
    assert ms_low - 1e-3 <= pld <= ours + 1e-3
    # ours is the upper end, ~eps_error above the estimate: within eps_error + PLD's 1e-3 grid of PLD.
    assert abs(ours - pld) <= PRV_EPS_ERROR + 1e-3


@pytest.mark.parametrize("segments, delta", [(s, d) for s, d in GRID if min(x[0] for x in s) >= 1])
def test_rdp_agrees_with_google_rdp_when_sigma_at_least_one(segments, delta):
    # Execute
    ours, google = epsilon(segments, delta=delta, accountant="rdp"), google_rdp(segments, delta)
    # Assert: same orders (dp-accounting's grid), optimal order ≥ 7 here: the series agree closely.
    assert ours == pytest.approx(google, rel=1e-4)


def test_rdp_below_sigma_one_stays_between_opacus_and_google_bounds():
    segments, delta = [(0.8, 0.02, 500)], 1e-6
    ours, google = epsilon(segments, delta=delta, accountant="rdp"), google_rdp(segments, delta)
    assert ours <= google <= 1.1 * ours


@pytest.mark.parametrize("sigma, q, steps, delta", [(1.5, 0.2, 100, 1e-6), (1.0, 0.1, 100, 1e-5)])
def test_rdp_at_small_fractional_order_google_is_looser_and_opacus_is_exact(sigma, q, steps, delta):
    """Found while building the grid: at optimal orders ~3-4, Google's RDP is up to 0.2 % higher.

    Opacus sums the signed series for fractional α; Google sums absolute values, an upper bound.
    Quadrature of A_α = E_{z~N(0,σ²)}[(1 − q + q·e^{(2z−1)/(2σ²)})^α] shows Opacus's value is exact.
    """
    from opacus.accountants.analysis.rdp import compute_rdp

    # Execute
    ours, google = epsilon([(sigma, q, steps)], delta=delta, accountant="rdp"), google_rdp([(sigma, q, steps)], delta)
    alpha = 3.5

    def integrand(z):
        return (math.exp(-z * z / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
                * (1 - q + q * math.exp((2 * z - 1) / (2 * sigma**2))) ** alpha)

    a_alpha, _ = integrate.quad(integrand, -40 * sigma, 40 * sigma, limit=400, epsabs=0, epsrel=1e-12)
    exact_rdp = math.log(a_alpha) / (alpha - 1)
    # Assert
    assert ours < google <= 1.01 * ours
    assert float(compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=[alpha])[0]) == pytest.approx(
        exact_rdp, rel=1e-9)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
@pytest.mark.parametrize("segments, delta", [([(1.0, 1.0, 10)], 1e-5), ([(5.0, 1.0, 4)], 1e-5),
                                             ([(2.0, 1.0, 3), (4.0, 1.0, 5)], 1e-6)])
def test_q_one_matches_the_gaussian_closed_form(accountant, segments, delta):
    # Prepare: without sampling, R Gaussian steps compose exactly into one with σ_eff = (Σ T/σ²)^(-1/2).
    sigma_eff = sum(t / s**2 for s, _, t in segments) ** -0.5
    exact = dp_accounting.get_epsilon_gaussian(sigma_eff, delta)
    # Execute
    ours = epsilon(segments, delta=delta, accountant=accountant)
    # Assert: never below the exact value; PRV's upper bound sits ≈ eps_error above it, RDP is looser.
    assert ours >= exact - 1e-6
    if accountant == "prv":
        assert ours <= exact + PRV_EPS_ERROR + 1e-3


def test_heterogeneous_segments_compose_rather_than_take_the_worst_sigma():
    mixed = epsilon([(1.0, 0.01, 300), (1.5, 0.01, 700)], delta=1e-5, accountant="prv")
    worst = epsilon([(1.0, 0.01, 1000)], delta=1e-5, accountant="prv")
    best = epsilon([(1.5, 0.01, 1000)], delta=1e-5, accountant="prv")
    assert best < mixed < worst
    # Rounds with the same (σ, q) are one segment: grouping into rounds does not change ε.
    assert epsilon([(1.0, 0.01, 300), (1.0, 0.01, 700)], delta=1e-5, accountant="prv") == worst


def test_equals_what_opacus_reports_when_driven_step_by_step():
    from opacus.accountants import create_accountant

    acc = create_accountant("prv")
    for _ in range(150):
        acc.step(noise_multiplier=1.1, sample_rate=0.02)
    assert epsilon([(1.1, 0.02, 150)], delta=1e-5, accountant="prv") == acc.get_epsilon(delta=1e-5)


@pytest.mark.parametrize("bad", [[(1.0, 0.01, 100.0)], [(1.0, 0.01, True)], [(0.0, 0.01, 10)], [(1.0, 1.5, 10)],
                                 [(1.0, 0.01)]])
def test_refuses_bad_segments(bad):
    with pytest.raises(AccountingError):
        epsilon(bad, delta=1e-5, accountant="prv")


def test_refuses_gdp_and_bad_delta_and_names_the_library():
    with pytest.raises(AccountingError, match="GDP"):
        epsilon([(1.0, 0.01, 10)], delta=1e-5, accountant="gdp")
    with pytest.raises(AccountingError, match="delta"):
        epsilon([(1.0, 0.01, 10)], delta=1.0, accountant="prv")
    assert epsilon([], delta=1e-5, accountant="rdp") == 0.0
    assert accountant_version("prv").startswith("opacus 1.6")


def test_calibration_counts_prior_spend_and_refuses_an_exhausted_budget():
    # Prepare
    prior = [(1.0, 0.01, 200)]
    # Execute
    sigma = calibrate_noise(target_epsilon=2.0, delta=1e-5, sample_rate=0.01, steps=100, accountant="prv",
                            prior_segments=prior)
    fresh = calibrate_noise(target_epsilon=2.0, delta=1e-5, sample_rate=0.01, steps=100, accountant="prv")
    # Assert: the σ per-round make_private_with_epsilon would pick is too small once spend exists.
    assert sigma > fresh
    assert epsilon([*prior, (sigma, 0.01, 100)], delta=1e-5, accountant="prv") <= 2.0
    assert epsilon([*prior, (fresh, 0.01, 100)], delta=1e-5, accountant="prv") > 2.0
    with pytest.raises(PrivacyBudgetExhausted, match="already spent"):
        calibrate_noise(target_epsilon=0.5, delta=1e-5, sample_rate=0.01, steps=10, accountant="prv",
                        prior_segments=prior)


def test_calibration_takes_a_fitting_guess_in_one_call_and_searches_past_any_other(monkeypatch):
    # Prepare: the σ a search finds, then the accountant's calls counted.
    kwargs = dict(target_epsilon=2.0, delta=1e-5, sample_rate=0.01, steps=100, accountant="prv",
                  prior_segments=[(1.0, 0.01, 200)])
    searched = calibrate_noise(**kwargs)
    calls = []
    monkeypatch.setattr(accounting, "epsilon", lambda *a, **k: calls.append(1) or epsilon(*a, **k))
    # Execute / Assert: last round's σ still fits, so it is the answer (what was spent, then the guess).
    assert calibrate_noise(**kwargs, guess=searched) == searched and len(calls) == 2
    # A guess under the target's σ, or one far above it, is not taken: the search lands where it would.
    assert calibrate_noise(**kwargs, guess=0.9 * searched) == searched
    assert calibrate_noise(**kwargs, guess=1.5 * searched) == searched
