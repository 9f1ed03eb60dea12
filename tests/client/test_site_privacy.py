"""client.app.site_privacy: the site plans and paces its own budget, refuses rounds of noise, charges a
(run, round) once, and keeps a DP round's optimiser state only once the ledger holds the round."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from client.app import site_privacy as sp
from client.app.site_privacy import ReleasedUpdates, SitePrivacy, private_round, schedule_warning
from privacy.accounting import PrivacyBudgetExhausted, RoundRefused, calibrate_noise, epsilon
from privacy.dp import DPRoundResult
from privacy.ledger import Ledger, LedgerError
from privacy.policy import PrivacyPolicy
from privacy.sampling import planned_steps

UNITS, EPOCHS, ROUNDS = 344, 2, 4  # the default job's site-1, its DP batch of 64: 11 steps a round
CALIBRATE = PrivacyPolicy(unit="record", target_epsilon=8.0, target_delta=1e-6, max_grad_norm=1.0,
                          noise_multiplier="calibrate", planned_rounds=ROUNDS)


def site(tmp_path, policy: PrivacyPolicy = CALIBRATE) -> SitePrivacy:
    return SitePrivacy(policy, Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=policy,
                                           site="s"), "s")


def test_calibrated_rounds_keep_one_sigma_and_end_just_under_the_target(tmp_path):
    # Prepare
    privacy = site(tmp_path)
    # Execute: plan and record each round, as a site does.
    plans, spent = [], []
    for r in range(ROUNDS):
        plans.append(privacy.plan(UNITS, epochs=EPOCHS))
        spent.append(privacy.record(plans[-1], run_id="run", round=r + 1))
    # Assert: one σ for the whole plan (so the ledger's rounds merge into one segment), the budget
    # spent within the calibration's tolerance by the last planned round, never past it.
    assert {p.noise_multiplier for p in plans} == {plans[0].noise_multiplier}
    assert all(p.steps == 11 and p.sample_rate == 64 / UNITS for p in plans)
    assert spent == sorted(spent) and 8.0 - 0.01 <= spent[-1] <= 8.0
    assert privacy.ledger.segments() == [(plans[0].noise_multiplier, 64 / UNITS, 11 * ROUNDS)]
    # Every planned round is charged: the site refuses more until its policy plans more.
    with pytest.raises(RoundRefused, match="plans 4 rounds and the ledger has charged 4"):
        privacy.plan(UNITS, epochs=EPOCHS)


def test_calibration_plans_over_the_sites_own_rounds_whatever_the_server_says(tmp_path):
    # Prepare: the policy plans 12 rounds; a server could claim this is the last (num-server-rounds
    # = global-round), which used to calibrate σ to spend everything left in one round.
    policy = dataclasses.replace(CALIBRATE, planned_rounds=12)
    privacy = site(tmp_path, policy)
    # Execute
    first = privacy.plan(UNITS, epochs=EPOCHS)
    privacy.record(first, run_id="run", round=7)
    # Assert: σ for 12 rounds of 11 steps; the charged round counts, the round number does not.
    q = 64 / UNITS
    assert first.noise_multiplier == calibrate_noise(target_epsilon=8.0, delta=1e-6, sample_rate=q, steps=11 * 12,
                                                     accountant="prv")
    assert epsilon([(first.noise_multiplier, q, 11)], delta=1e-6, accountant="prv") < 8.0 / 3
    assert privacy.plan(UNITS, epochs=EPOCHS).noise_multiplier == first.noise_multiplier


def test_a_site_that_plans_more_rounds_re_plans_and_still_ends_under_the_target(tmp_path):
    # Prepare: round 1 planned for 4 rounds, then the site's officer raises planned_rounds to 9
    # (a pace key: the same ledger goes on).
    privacy = site(tmp_path)
    first = privacy.plan(UNITS, epochs=EPOCHS)
    privacy.record(first, run_id="run", round=1)
    more = dataclasses.replace(CALIBRATE, planned_rounds=9)
    privacy = SitePrivacy(more, Ledger.open(privacy.ledger.path, dataset_fingerprint="d", policy=more, site="s"), "s")
    # Execute
    later = []
    for r in range(8):
        later.append(privacy.plan(UNITS, epochs=EPOCHS))
        spent = privacy.record(later[-1], run_id="run", round=2 + r)
    # Assert: more noise for the 8 rounds left, which then holds; the budget ends spent, not overspent.
    assert later[0].noise_multiplier > first.noise_multiplier
    assert {p.noise_multiplier for p in later} == {later[0].noise_multiplier}
    assert 8.0 - 0.01 <= spent <= 8.0


def test_a_round_that_needs_more_noise_than_the_cap_is_refused_not_trained(tmp_path):
    # σ ≈ 1.64 spends ε = 8 over 12 rounds here (BENCHMARKS.md); a cap of 1.0 cannot pay for one.
    policy = dataclasses.replace(CALIBRATE, planned_rounds=12, max_noise_multiplier=1.0)
    with pytest.raises(RoundRefused, match="needs σ above max_noise_multiplier 1 for the 12 planned round"):
        site(tmp_path, policy).plan(UNITS, epochs=EPOCHS)
    # ε = 1.96 of 2 spent: the 3 planned rounds left would need σ far above 8, rounds of noise.
    privacy = site(tmp_path / "b", dataclasses.replace(CALIBRATE, target_epsilon=2.0))
    privacy.ledger.record(run_id="r", round=1, n_units=UNITS, sample_rate=64 / UNITS, noise_multiplier=3.0, steps=40)
    with pytest.raises(RoundRefused, match="max_noise_multiplier 8"):
        privacy.plan(UNITS, epochs=EPOCHS)


def test_max_epsilon_per_round_caps_a_fixed_sigma_and_paces_a_calibrated_one(tmp_path):
    fixed = PrivacyPolicy(unit="record", target_epsilon=8.0, target_delta=1e-6, max_grad_norm=1.0,
                          noise_multiplier=1.0, max_epsilon_per_round=0.5)
    with pytest.raises(RoundRefused, match="more than max_epsilon_per_round 0.5"):
        site(tmp_path, fixed).plan(UNITS, epochs=EPOCHS)
    # A calibrated round takes more noise rather than more than the cap (round 1 of 4 would take ~3.4).
    paced = dataclasses.replace(CALIBRATE, max_epsilon_per_round=1.0)
    plan = site(tmp_path / "b", paced).plan(UNITS, epochs=EPOCHS)
    assert 0.95 <= epsilon([(plan.noise_multiplier, plan.sample_rate, plan.steps)], delta=1e-6,
                           accountant="prv") <= 1.0


# --- One round at the site: charged once, re-sent not retrained, state kept after the record ---------


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.clip, self.lm = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        torch.nn.init.zeros_(self.lm.weight)


class _Memory:
    def __init__(self) -> None:
        self.saved: dict = {}

    def load(self, objective):
        return None

    def save(self, objective, state):
        self.saved[objective] = state


@pytest.fixture
def fake_training(monkeypatch):
    """DP training replaced by a step that moves the LM and saves moments: what private_round does
    around it (plan, record, release, keep state) is what is tested."""
    calls = []

    def train(model, examples, objective, *, batch_size, epochs, memory, **kwargs):
        calls.append(kwargs["noise_multiplier"])
        with torch.no_grad():
            model.lm.weight += float(len(calls))
        if memory is not None:
            memory.save(objective, {"moments": len(calls)})
        steps, q = planned_steps(UNITS, batch_size=batch_size, epochs=epochs)
        return DPRoundResult(0.5, UNITS, steps, q, kwargs["noise_multiplier"], 1.0, UNITS)

    monkeypatch.setattr(sp, "private_update", train)
    monkeypatch.setattr(sp, "units_of", lambda examples, objective, unit: UNITS)
    return calls


def one_round(privacy, tmp_path, model=None, memory=None, round=1):
    return private_round(privacy, model or _Model(), None, "report-generation", run_id="run-a", round=round,
                         train=None, epochs=EPOCHS, seed=0, device="cpu", released=ReleasedUpdates(tmp_path / "state"),
                         memory=memory)


def test_a_round_asked_again_is_sent_again_not_charged_again(tmp_path, fake_training):
    # Prepare
    privacy, first = site(tmp_path), _Model()
    loss, n, eps = one_round(privacy, tmp_path, first)
    # Execute: the server asks the same (run, round) again (a resume, a retry, or on purpose)
    again = _Model()
    assert one_round(privacy, tmp_path, again) == (loss, n, eps)
    # Assert: trained once, charged once, the same values released again
    assert len(fake_training) == 1 and len(privacy.ledger.entries()) == 1
    assert torch.equal(again.lm.weight, first.lm.weight) and again.lm.weight.abs().sum() > 0
    # A released update no longer kept: refused, never trained and charged a second time
    (tmp_path / "state" / "released-r1.pt").unlink()
    with pytest.raises(RoundRefused, match="already charged"):
        one_round(privacy, tmp_path)
    assert len(fake_training) == 1 and len(privacy.ledger.entries()) == 1


def test_optimiser_state_is_not_kept_when_the_round_cannot_be_recorded(tmp_path, fake_training, monkeypatch):
    # Prepare: the ledger refuses at record time (damaged, or a concurrent run took the budget)
    privacy, memory = site(tmp_path), _Memory()

    def fail(**kwargs):
        raise LedgerError(f"{privacy.ledger.path}: damaged ledger, refusing to extend it")

    monkeypatch.setattr(privacy.ledger, "record", fail)
    # Execute
    with pytest.raises(LedgerError):
        one_round(privacy, tmp_path, memory=memory)
    # Assert: nothing kept, nothing to re-send
    assert memory.saved == {} and not list((tmp_path / "state").glob("released-*"))
    # Recorded: kept.
    monkeypatch.delattr(privacy.ledger, "record")  # the ledger's own again
    one_round(privacy, tmp_path, memory=memory, round=2)
    assert memory.saved == {"report-generation": {"moments": 2}}


def test_site_check_warns_when_the_policy_fits_no_round(tmp_path, monkeypatch):
    monkeypatch.setattr(sp, "units_of", lambda examples, objective, unit: UNITS)
    epochs = {"contrastive": 1, "report-generation": 1}
    fits = dataclasses.replace(CALIBRATE, planned_rounds=12)
    assert schedule_warning(fits, None, None, epochs=epochs) is None
    noisy = dataclasses.replace(fits, max_noise_multiplier=0.5)
    warning = schedule_warning(noisy, None, tmp_path / "absent.jsonl", epochs=epochs)
    assert "contrastive" in warning and "report-generation" in warning and "max_noise_multiplier 0.5" in warning
    with pytest.raises(PrivacyBudgetExhausted):  # the same planning a round does
        sp.plan_round(dataclasses.replace(fits, noise_multiplier=0.3), units=UNITS, epochs=1, prior=[],
                      charged_rounds=0)


def test_m3fed_site_check_fails_on_a_policy_that_fits_no_round(tmp_path, small_mimic, capsys):
    # Prepare: a policy whose budget needs more noise than it allows, at the site's own data
    import yaml

    from sim.m3fed_command import main

    (tmp_path / "privacy.yaml").write_text("unit: record\ntarget_epsilon: 0.5\ntarget_delta: 1.0e-4\n"
                                           "max_grad_norm: 1.0\nnoise_multiplier: calibrate\nbatch_size: 8\n"
                                           "max_noise_multiplier: 2.0\n")
    spec = {"site": "hospital-a", "superlink": "fl.example.org:8000", "data": str(small_mimic),
            "languages": ["en", "zh"], "modalities": ["CXR", "CT"], "approved_apps": ["ab" * 32],
            "state_dir": "state", "insecure": True, "privacy_policy": "privacy.yaml"}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(spec))
    # Execute
    code = main(["site", "check", "--config", str(tmp_path / "site.yaml")])
    # Assert: not OK (every round would be refused), with the numbers; nothing written to the ledger
    captured = capsys.readouterr()
    assert code == 1 and "site configuration OK" not in captured.out
    assert "privacy plan: 12 rounds × 2 local epochs at " in captured.out and "no round fits" in captured.out
    assert "needs σ above max_noise_multiplier 2" in captured.out and "raise max_noise_multiplier" in captured.out
    assert "error: site configuration not OK" in captured.err
    assert not (tmp_path / "state" / "ledger.jsonl").exists()
    assert "reports scrubbed: 0 of " in captured.out  # the synthetic reports carry only MIMIC's ___


def test_what_a_round_keeps_at_the_site_is_private(tmp_path):
    import stat

    from shared_model.kept_state import RoundFiles

    RoundFiles(tmp_path, 1).save("contrastive", {"state": {}, "param_groups": []})
    ReleasedUpdates(tmp_path).keep(run_id="r", round=1, objective="contrastive", arrays={"clip.w": torch.ones(2)},
                                   loss=0.1, examples=3)
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["optimizer-contrastive-r1.pt", "released-r1.pt"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
