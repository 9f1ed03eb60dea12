"""client.site_privacy: a site's calibrated plan spends its budget over the planned rounds, and no more."""
from __future__ import annotations

from client.site_privacy import SitePrivacy
from privacy.ledger import Ledger
from privacy.policy import PrivacyPolicy

UNITS, EPOCHS, ROUNDS = 344, 2, 4  # the default job's site-1, its DP batch of 64: 11 steps a round


def site(tmp_path) -> SitePrivacy:
    p = PrivacyPolicy(unit="record", target_epsilon=8.0, target_delta=1e-6, max_grad_norm=1.0,
                      noise_multiplier="calibrate")
    return SitePrivacy(p, Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=p, site="s"), "s")


def test_calibrated_rounds_keep_one_sigma_and_end_just_under_the_target(tmp_path):
    # Prepare
    privacy = site(tmp_path)
    # Execute: plan and record each round, as a site does.
    plans, spent = [], []
    for r in range(ROUNDS):
        plans.append(privacy.plan(UNITS, epochs=EPOCHS, rounds_left=ROUNDS - r))
        spent.append(privacy.record(plans[-1], run_id="run", round=r + 1))
    # Assert: one σ for the whole plan (so the ledger's rounds merge into one segment), the budget
    # spent within the calibration's tolerance by the last planned round, never past it.
    assert {p.noise_multiplier for p in plans} == {plans[0].noise_multiplier}
    assert all(p.steps == 11 and p.sample_rate == 64 / UNITS for p in plans)
    assert spent == sorted(spent) and 8.0 - 0.01 <= spent[-1] <= 8.0
    assert privacy.ledger.segments() == [(plans[0].noise_multiplier, 64 / UNITS, 11 * ROUNDS)]


def test_a_plan_that_no_longer_fits_is_searched_again_and_still_ends_under_the_target(tmp_path):
    # Prepare: round 1 planned for 4 rounds, then the site is asked for 8 more.
    privacy = site(tmp_path)
    first = privacy.plan(UNITS, epochs=EPOCHS, rounds_left=ROUNDS)
    privacy.record(first, run_id="run", round=1)
    # Execute
    later = []
    for r in range(8):
        later.append(privacy.plan(UNITS, epochs=EPOCHS, rounds_left=8 - r))
        spent = privacy.record(later[-1], run_id="run", round=2 + r)
    # Assert: last round's σ would overspend over 8 more rounds; a new search finds more noise,
    # which then holds for the rest, and the budget ends spent, not overspent.
    assert later[0].noise_multiplier > first.noise_multiplier
    assert {p.noise_multiplier for p in later} == {later[0].noise_multiplier}
    assert 8.0 - 0.01 <= spent <= 8.0
