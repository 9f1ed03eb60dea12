"""Invariants of privacy.accounting checked by hypothesis (privacy.md §6, oracle 2 and 5).

Kept to a few examples each so the privacy tests stay under a minute on two cores; a one-off run
with 150 examples per property found no violation of monotonicity in steps or σ.
"""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from privacy.accounting import (
    PRV_EPS_ERROR,
    PrivacyBudgetExhausted,
    affordable_steps,
    calibrate_noise,
    epsilon,
    would_exceed,
)
from tests.privacy.test_accounting import google_pld

SIGMA = st.floats(0.8, 3.0)
RATE = st.floats(1e-3, 0.2)
STEPS = st.integers(1, 300)
DELTA = st.sampled_from([1e-5, 1e-6])
ACCOUNTANT = st.sampled_from(["prv", "rdp"])


@settings(max_examples=12, deadline=None)
@given(sigma=SIGMA, q=RATE, steps=STEPS, more=st.integers(0, 300), delta=DELTA, accountant=ACCOUNTANT)
def test_epsilon_is_non_decreasing_in_steps(sigma, q, steps, more, delta, accountant):
    assert epsilon([(sigma, q, steps)], delta=delta, accountant=accountant) <= epsilon(
        [(sigma, q, steps + more)], delta=delta, accountant=accountant) + 1e-9


@settings(max_examples=12, deadline=None)
@given(sigma=SIGMA, factor=st.floats(1.0, 3.0), q=RATE, steps=STEPS, delta=DELTA, accountant=ACCOUNTANT)
def test_epsilon_is_non_increasing_in_sigma(sigma, factor, q, steps, delta, accountant):
    assert epsilon([(sigma * factor, q, steps)], delta=delta, accountant=accountant) <= epsilon(
        [(sigma, q, steps)], delta=delta, accountant=accountant) + 1e-9


@settings(max_examples=10, deadline=None)
@given(sigma=SIGMA, q=RATE, steps=STEPS, delta=DELTA)
def test_pld_below_prv_below_rdp(sigma, q, steps, delta):
    prv = epsilon([(sigma, q, steps)], delta=delta, accountant="prv")
    # PRV's upper bound is the estimate (≤ the true ε ≤ RDP) plus eps_error, so the slack is eps_error.
    assert google_pld([(sigma, q, steps)], delta) <= prv + 1e-3
    assert prv <= epsilon([(sigma, q, steps)], delta=delta, accountant="rdp") + PRV_EPS_ERROR


@settings(max_examples=5, deadline=None)
@given(target=st.floats(0.5, 8.0), q=st.floats(1e-3, 0.05), steps=st.integers(1, 100),
       prior=st.integers(0, 100), accountant=ACCOUNTANT, guess=st.one_of(st.none(), st.floats(0.1, 20.0)))
@example(target=0.5, q=0.048828125, steps=1, prior=19, accountant="prv", guess=None)  # prior spend already > target
def test_calibration_never_overshoots(target, q, steps, prior, accountant, guess):
    prior_segments = [(2.0, q, prior)]
    kwargs = dict(target_epsilon=target, delta=1e-5, sample_rate=q, steps=steps, accountant=accountant,
                  prior_segments=prior_segments, guess=guess)
    if prior and epsilon(prior_segments, delta=1e-5, accountant=accountant) >= target:
        with pytest.raises(PrivacyBudgetExhausted):  # no σ can make up for what was already spent
            calibrate_noise(**kwargs)
        return
    sigma = calibrate_noise(**kwargs)
    assert epsilon([*prior_segments, (sigma, q, steps)], delta=1e-5, accountant=accountant) <= target
    assert not would_exceed(prior_segments, (sigma, q, steps), delta=1e-5, target_epsilon=target,
                            accountant=accountant)


@settings(max_examples=6, deadline=None)
@given(sigma=st.floats(0.8, 2.0), q=st.floats(0.005, 0.05), target=st.floats(0.5, 4.0), multiple=st.integers(1, 50))
def test_affordable_steps_is_the_largest_multiple_that_fits(sigma, q, target, multiple):
    kwargs = dict(delta=1e-5, accountant="rdp")
    steps = affordable_steps(target_epsilon=target, noise_multiplier=sigma, sample_rate=q, multiple=multiple,
                             limit=2000, **kwargs)
    assert steps % multiple == 0 and 0 <= steps <= 2000
    if steps:
        assert epsilon([(sigma, q, steps)], **kwargs) <= target
    if steps + multiple <= 2000:
        assert epsilon([(sigma, q, steps + multiple)], **kwargs) > target
