"""``m3fed privacy ...`` through a parser built only from add_privacy_commands, as sim/m3fed_command.py will wire it."""
from __future__ import annotations

import argparse
import json

import pytest

from privacy.accounting import epsilon
from privacy.cli import add_privacy_commands
from privacy.ledger import Ledger, dataset_fingerprint
from privacy.policy import load_policy

POLICY = """\
unit: patient
target_epsilon: 3.0
target_delta: 1e-5
max_grad_norm: 1.0
noise_multiplier: {sigma}
batch_size: 50
"""


def m3fed(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="m3fed")
    add_privacy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def policy_file(tmp_path):
    def write(sigma="1.0"):
        path = tmp_path / f"policy-{sigma}.yaml"
        path.write_text(POLICY.format(sigma=sigma))
        return str(path)
    return write


@pytest.fixture
def ledger_file(tmp_path, policy_file):
    path = tmp_path / "ledger.jsonl"
    led = Ledger.open(path, dataset_fingerprint=dataset_fingerprint([("p1", b"x")]),
                      policy=load_policy(policy_file()), site="hospital-a")
    for r in (1, 2, 3):
        led.record(run_id="run-1", round=r, n_units=5000, sample_rate=0.01, noise_multiplier=1.0, steps=60)
    return path


def test_epsilon_json_equals_the_library(capsys):
    # Execute
    rc = m3fed(["privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--steps", "500",
                "--delta", "1e-5", "--json"])
    # Assert
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["epsilon"] == epsilon([(1.1, 0.01, 500)], delta=1e-5, accountant="prv")
    assert m3fed(["privacy", "epsilon", "--sample-rate", "0.01", "--noise-multiplier", "1.1", "--steps", "500",
                  "--delta", "1e-5", "--accountant", "rdp"]) == 0
    assert "ε = " in capsys.readouterr().out


def test_bad_values_give_one_error_line_and_exit_2(capsys):
    rc = m3fed(["privacy", "epsilon", "--sample-rate", "1.5", "--noise-multiplier", "1", "--steps", "5",
                "--delta", "1e-5"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: sample_rate") and err.count("\n") == 1 and "Traceback" not in err


def test_plan_projects_each_round_and_counts_affordable_rounds(policy_file, capsys):
    # Execute: σ = 1.0, q = 50/5000 = 0.01, 60 steps a round
    rc = m3fed(["privacy", "plan", "--policy", policy_file(), "--dataset-size", "5000", "--rounds", "4",
                "--local-steps", "60", "--json"])
    plan = json.loads(capsys.readouterr().out)
    # Assert
    assert rc == 0 and plan["sample_rate"] == 0.01 and plan["within_target"] and plan["affordable_rounds"] == 4
    eps = [row["epsilon"] for row in plan["projection"]]
    assert eps == sorted(eps) and len(eps) == 4
    assert eps[-1] == epsilon([(1.0, 0.01, 240)], delta=1e-5, accountant="prv")


def test_plan_calibrates_sigma_to_the_target(policy_file, capsys):
    rc = m3fed(["privacy", "plan", "--policy", policy_file("calibrate"), "--dataset-size", "5000",
                "--rounds", "3", "--local-steps", "60", "--json"])
    plan = json.loads(capsys.readouterr().out)
    assert rc == 0 and plan["noise_source"].startswith("calibrated")
    assert 2.9 <= plan["projection"][-1]["epsilon"] <= 3.0


def test_plan_that_overruns_exits_1_and_delta_too_big_exits_2(policy_file, capsys):
    rc = m3fed(["privacy", "plan", "--policy", policy_file("0.6"), "--dataset-size", "5000", "--rounds", "5",
                "--local-steps", "60"])
    out = capsys.readouterr().out
    assert rc == 1 and "of 5 rounds fit" in out and "> target" in out
    rc = m3fed(["privacy", "plan", "--policy", policy_file(), "--dataset-size", "100000", "--rounds", "2",
                "--local-steps", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and "1/100000" in err and "1/(10N) = 1e-06" in err


def test_report_markdown_and_json(ledger_file, capsys):
    assert m3fed(["privacy", "report", "--ledger", str(ledger_file)]) == 0
    assert "# Privacy statement: site hospital-a" in capsys.readouterr().out
    assert m3fed(["privacy", "report", "--ledger", str(ledger_file), "--json"]) == 0
    statement = json.loads(capsys.readouterr().out)
    assert statement["epsilon"] == Ledger(ledger_file).epsilon() and statement["composition"]["steps"] == 180


def test_verify_exit_codes(ledger_file, tmp_path, capsys):
    # Execute / Assert: intact
    assert m3fed(["privacy", "verify", "--ledger", str(ledger_file)]) == 0
    assert capsys.readouterr().out.startswith("ok: 3 entries, ε=")
    # tampered: one recorded step count lowered
    ledger_file.write_text(ledger_file.read_text().replace('"steps":60', '"steps":6', 1))
    assert m3fed(["privacy", "verify", "--ledger", str(ledger_file)]) == 1
    assert "hash does not match" in capsys.readouterr().out
    assert m3fed(["privacy", "report", "--ledger", str(ledger_file)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    # not there at all: a usage error, not a verification result
    assert m3fed(["privacy", "verify", "--ledger", str(tmp_path / "absent.jsonl")]) == 2
    assert "cannot read ledger" in capsys.readouterr().err


def test_plan_defaults_to_the_policys_rounds_and_flags_a_sigma_above_the_cap(policy_file, tmp_path, capsys):
    # Prepare: ε = 0.3 over 12 planned rounds of 60 steps at q = 0.01 needs σ well above 2
    path = tmp_path / "tight.yaml"
    path.write_text(POLICY.format(sigma="calibrate").replace("target_epsilon: 3.0", "target_epsilon: 0.3")
                    + "planned_rounds: 12\nmax_noise_multiplier: 2.0\n")
    # Execute
    rc = m3fed(["privacy", "plan", "--policy", str(path), "--dataset-size", "5000", "--local-steps", "60", "--json"])
    plan = json.loads(capsys.readouterr().out)
    # Assert: the site would refuse these rounds rather than train on noise, so the plan does not fit
    assert rc == 1 and plan["rounds"] == 12 and not plan["within_target"]
    assert plan["noise_multiplier"] > 2.0 and "max_noise_multiplier 2" in plan["refused"][0]
