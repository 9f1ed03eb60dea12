"""m3fed site check plans the site's privacy policy over the announced schedule, round by round as
the rounds would be planned (client/admin/site_plan.py, client.app.site_privacy.plan_schedule), and fails when
no round fits; site start only warns."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import yaml

from client.admin.site_plan import privacy_plan
from client.app.site_privacy import RoundPlan, SitePrivacy, plan_schedule, units_of
from privacy.ledger import Ledger
from privacy.policy import PrivacyPolicy
from sim.m3fed_command import main
from tests.privacy.test_dp import site

FIXED = PrivacyPolicy(unit="record", target_epsilon=50.0, target_delta=1e-3, max_grad_norm=1.0,
                      noise_multiplier=1.0, batch_size=4, planned_rounds=4, accountant="rdp")  # rdp: fast
ALTERNATE = ["contrastive", "report-generation"]
EPOCHS = {"contrastive": 1, "report-generation": 2}


def test_the_plan_spends_what_the_rounds_record(tmp_path):
    # Prepare: a site whose two objectives train on different numbers of studies (text-only reports)
    examples = site(patients=8)
    units = {o: units_of(examples, o, "record") for o in EPOCHS}
    assert units["contrastive"] != units["report-generation"]
    # Execute: the schedule planned ahead, then the same rounds planned and recorded as a site does
    plan = plan_schedule(FIXED, examples, tmp_path / "absent.jsonl", objectives=ALTERNATE, epochs=EPOCHS)
    privacy = SitePrivacy(FIXED, Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=FIXED,
                                             site="s"), "s")
    plans, spent = [], 0.0
    for number, objective in enumerate(ALTERNATE, start=1):
        plans.append(privacy.plan(units[objective], epochs=EPOCHS[objective]))
        spent = privacy.record(plans[-1], run_id="run", round=number)
    # Assert: the same plans, and the same ε after them
    assert [p for _, _, p in plan.planned] == plans and not plan.refused and plan.epsilon_before == 0.0
    assert plan.epsilon_after == pytest.approx(spent, rel=1e-9)
    # ... and from the ledger as it now stands, what the next round would add
    again = plan_schedule(FIXED, examples, privacy.ledger.path, objectives=ALTERNATE[:1], epochs=EPOCHS)
    assert again.epsilon_before == pytest.approx(spent) and again.epsilon_after > spent


def test_rounds_past_the_target_are_refused_and_spend_nothing(tmp_path):
    examples = site(patients=8)
    one = plan_schedule(FIXED, examples, None, objectives=ALTERNATE[:1], epochs=EPOCHS).epsilon_after
    tight = dataclasses.replace(FIXED, target_epsilon=one * 1.1)  # room for the first round only
    plan = plan_schedule(tight, examples, None, objectives=["contrastive"] * 3, epochs=EPOCHS)
    assert [n for n, _, _ in plan.planned] == [1] and [n for n, _, _ in plan.refused] == [2, 3]
    assert "privacy budget exhausted" in plan.refused[0][2] and plan.epsilon_after == pytest.approx(one)
    one_study = site(patients=1).subset(lambda r: r.study_id == "s0")
    idle = plan_schedule(FIXED, one_study, None, objectives=ALTERNATE, epochs=EPOCHS)
    assert idle.trained == 0 and not idle.planned and not idle.refused  # fewer than two studies: nothing to train


def _cfg(tmp_path, policy: PrivacyPolicy):
    path = tmp_path / "privacy.yaml"
    path.write_text(yaml.safe_dump(policy.to_dict()))
    return SimpleNamespace(privacy_policy=path, ledger=tmp_path / "ledger.jsonl")


def test_site_start_warns_with_the_numbers_and_what_to_change(tmp_path):
    # Prepare: a fixed σ far too small for the target
    cfg = _cfg(tmp_path, dataclasses.replace(FIXED, noise_multiplier=0.3, target_epsilon=0.5))
    # Execute
    fits, lines = privacy_plan(cfg, site(patients=8), rounds=2, local_epochs=1, schedule="alternate", joining=True)
    # Assert
    text = "\n".join(lines)
    assert not fits and lines[0].startswith("warning: privacy plan: 2 rounds × 1 local epoch at ")
    assert "no round fits; every round would be refused; the site joins" in lines[0]
    assert "round 1 (contrastive)" in text and "round 2 (report-generation)" in text
    assert "batch_size 4 → q" in text and "privacy budget exhausted" in text
    assert "add more noise (raise noise_multiplier, now 0.3" in text and "a bigger target_epsilon (now 0.5)" in text
    assert "a smaller batch_size (now 4)" in text


def test_a_schedule_that_fits_in_part_says_which_round_is_refused_first(tmp_path):
    examples = site(patients=8)
    one = plan_schedule(FIXED, examples, None, objectives=ALTERNATE[:1], epochs={"contrastive": 1}).epsilon_after
    cfg = _cfg(tmp_path, dataclasses.replace(FIXED, target_epsilon=one * 1.1))
    fits, lines = privacy_plan(cfg, examples, rounds=3, local_epochs=1, schedule="alternate",
                               joining=True)
    assert fits and lines[0].startswith("privacy plan: 3 rounds × 1 local epoch at 11 records (contrastive) / "
                                        "16 records (report-generation) (σ 1, q 0.364, 3 DP steps a round): ε ")
    assert lines[0].endswith("after 3 rounds; only 1 of 3 rounds fit")
    assert lines[1].startswith("warning: round 2 (report-generation) and 1 later round(s) would be refused: "
                               "privacy budget exhausted")


def test_a_ledger_that_charged_every_planned_round_needs_more_planned_rounds(tmp_path):
    policy = dataclasses.replace(FIXED, noise_multiplier="calibrate", planned_rounds=2)
    privacy = SitePrivacy(policy, Ledger.open(tmp_path / "ledger.jsonl", dataset_fingerprint="d", policy=policy,
                                              site="s"), "s")
    for number in (1, 2):
        privacy.record(RoundPlan(units=16, steps=4, sample_rate=0.25, noise_multiplier=2.0), run_id="r", round=number)
    fits, lines = privacy_plan(_cfg(tmp_path, policy), site(patients=8), rounds=None, local_epochs=None,
                               joining=False)
    assert not fits and lines[0].startswith("privacy plan: 1 round × 2 local epochs at ")  # RunConfig's default
    assert "the policy plans 2 rounds and the ledger has charged 2" in lines[1]
    assert lines[-1].strip().startswith("to plan more rounds, raise planned_rounds in ")


def test_no_policy_no_plan(tmp_path):
    assert privacy_plan(SimpleNamespace(privacy_policy=None), None, rounds=None, local_epochs=None,
                        joining=False) == (True, [])


def _site(tmp_path, data, policy: PrivacyPolicy) -> str:
    policy_path = tmp_path / "privacy.yaml"
    policy_path.write_text(yaml.safe_dump(policy.to_dict()))
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({
        "site": "a", "superlink": "fl.example.org:8000", "insecure": True, "data": str(data), "languages": ["en"],
        "modalities": ["CXR", "CT"], "approved_apps": ["ab" * 32], "state_dir": "state",
        "privacy_policy": "privacy.yaml"}))
    return str(path)


def test_m3fed_site_check_plans_the_announced_schedule_and_fails_when_no_round_fits(tmp_path, small_mimic, capsys):
    # Prepare: N = 51 English studies; the default job's δ would not be below 1/N
    policy = dataclasses.replace(FIXED, target_delta=1e-5, batch_size=8)
    # Execute / Assert: 3 rounds of 2 local epochs fit
    assert main(["site", "check", "--config", _site(tmp_path, small_mimic, policy), "--rounds", "3",
                 "--schedule", "alternate", "--local-epochs", "2"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("privacy plan: "))
    assert line.startswith("privacy plan: 3 rounds × 2 local epochs at 51 records (σ 1, q 0.157, 13 DP steps "
                           "a round): ε ") and line.endswith(" of 50 after 3 rounds; every round fits")
    assert out.rstrip().endswith("site configuration OK")
    # A policy that fits no round: not OK, exit 1, with the numbers
    tight = dataclasses.replace(policy, noise_multiplier=0.3, target_epsilon=0.5)
    assert main(["site", "check", "--config", _site(tmp_path, small_mimic, tight), "--rounds", "2",
                 "--schedule", "alternate", "--local-epochs", "1"]) == 1
    captured = capsys.readouterr()
    assert "privacy plan: 2 rounds × 1 local epoch at 51 records: no round fits" in captured.out
    assert "site configuration OK" not in captured.out
    assert "error: site configuration not OK: the privacy policy" in captured.err
    with pytest.raises(SystemExit):
        main(["site", "check", "--config", "site.yaml", "--rounds", "0"])
