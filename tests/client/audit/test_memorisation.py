"""`m3fed audit memorisation` on a trained tiny model: repeated canaries are memorised without DP, not under
heavy DP noise; the ε spent is the accountant's; user mistakes are one error line; the model card shows it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sim.m3fed_command import main
from tests.shared_model.trained_tiny import trained_tiny

# 6 canaries x 20 records each: 120 canary records beside the site's 132 reports. Without DP they are
# memorised (rank 1 of 101 is log2(101) = 6.66 bits); under σ = 20 each step's noise is ~8x the clipped
# gradients of the ~2.5 copies of a canary it samples.
AUDIT = ["--canaries", "6", "--repeats", "20", "--epochs", "3", "--alternatives", "100", "--generate", "5"]
NOISY_POLICY = """unit: record
target_epsilon: 1.0
target_delta: 1.0e-5
accountant: prv
max_grad_norm: 1.0
noise_multiplier: 20.0
max_noise_multiplier: 64.0
batch_size: 16
"""


@pytest.fixture(scope="module")
def plain(run_dir) -> dict:
    assert main(["audit", "memorisation", "--model", str(run_dir), "--data", str(trained_tiny()[0]), *AUDIT]) == 0
    return json.loads((run_dir / "memorisation" / "memorisation.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def noisy(run_dir, tmp_path_factory) -> dict:
    policy = tmp_path_factory.mktemp("policy") / "privacy.yaml"
    policy.write_text(NOISY_POLICY)
    assert main(["audit", "memorisation", "--model", str(run_dir), "--data", str(trained_tiny()[0]), *AUDIT,
                 "--dp", str(policy)]) == 0
    return json.loads((run_dir / "memorisation-dp" / "memorisation.json").read_text(encoding="utf-8"))


def test_repeated_canaries_are_memorised_without_dp_and_the_control_group_stays_at_chance(plain, run_dir):
    e, c = plain["exposure"], plain["canaries"]
    assert c["candidates"] == 101 and c["max_exposure"] == pytest.approx(6.658, abs=1e-3)
    assert e["chance"] == pytest.approx(1.40, abs=0.01)
    assert e["inserted"]["mean"] >= 5.5, c["per_canary"]
    assert e["control"]["mean"] <= 3.5
    assert e["tests"]["uniform_p"] < 1e-3 and e["tests"]["control_p"] < 0.05
    assert plain["training"]["privacy"] is None and "local_update" in plain["training"]["path"]
    assert plain["data"]["canary_records"] == 120 and {r["language"] for r in c["per_canary"]} == {"en", "zh"}
    # Regurgitation was measured on reports generated for held-out test images
    g = plain["regurgitation"]
    assert g["generated"] == 10 and g["conditioned_on"].startswith("held-out test images")
    assert 0 <= g["verbatim_train"] <= 1 and g["longest_ngram_max"] >= 1
    # The audit config sits beside the result, with the model's hash
    config = json.loads((run_dir / "memorisation" / "config.json").read_text(encoding="utf-8"))
    assert config["canaries"] == 6 and config["weights_sha256"] == plain["model"]["sha256"]


def test_under_heavy_dp_noise_the_canaries_stay_near_chance_and_epsilon_is_the_accountants(noisy, plain, run_dir):
    from client.data.sources import load_records
    from privacy.accounting import epsilon
    from privacy.ledger import verify_ledger

    records, _ = load_records(trained_tiny()[0])
    studies = {(r.patient_id, r.study_id) for r in records if r.split == "train"}

    e, p = noisy["exposure"], noisy["training"]["privacy"]
    assert e["inserted"]["mean"] < 3.5 < plain["exposure"]["inserted"]["mean"], noisy["canaries"]["per_canary"]
    assert e["inserted"]["extracted"] == 0
    # The site's DP round under the policy: σ as written, ε replayed from the audit's own ledger
    assert p["noise_multiplier"] == 20.0 and p["units"] == len(studies) + 120 and p["steps"] >= 1
    assert p["epsilon"] == pytest.approx(epsilon([(p["noise_multiplier"], p["sample_rate"], p["steps"])],
                                                 delta=p["delta"], accountant="prv"), abs=1e-9)
    assert p["epsilon"] < 1.0 and "m3fed privacy epsilon --sample-rate" in p["reproduce"]
    assert verify_ledger(run_dir / "memorisation-dp" / "ledger.jsonl") == []
    assert not list((run_dir / "memorisation-dp" / "state").glob("*.pt"))  # the trained copy is not kept


def test_the_model_card_shows_both_audits_side_by_side_or_says_not_audited(plain, noisy, run_dir, tmp_path):
    from server.model_card import write_model_card
    from tests.server.run_records import central_run

    run = tmp_path / "central"
    central_run(run)
    assert "Not audited" in write_model_card(run).read_text(encoding="utf-8")
    for folder in ("memorisation", "memorisation-dp"):
        shutil.copytree(run_dir / folder, run / folder)
    text = write_model_card(run).read_text(encoding="utf-8")
    card = json.loads((run / "model_card.json").read_text(encoding="utf-8"))
    assert "## Memorisation audit" in text and "Not audited" not in text
    rows = [line for line in text.splitlines() if line.startswith("| memorisation")]
    assert rows[0].startswith("| memorisation | no DP") and rows[1].startswith("| memorisation-dp | DP-SGD ε ")
    assert f"{plain['exposure']['inserted']['mean']:.2f} / " in rows[0]
    assert [a["dp"] for a in card["memorisation"]["audits"]] == [False, True]
    assert "audited another model file" in rows[0]  # the pooled run's own weights are not the audited tiny model


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Path:
    """A run folder with the tiny preset's initial weights: enough for the checks before any training."""
    from shared_model.checkpoint import save_checkpoint
    from shared_model.config import get_preset
    from shared_model.model import build_model

    run = tmp_path_factory.mktemp("untrained")
    save_checkpoint(run / "model.safetensors", build_model(get_preset("tiny")))
    return run


@pytest.mark.parametrize("case", ["missing model", "bad data", "bad policy", "no canaries", "few alternatives"])
def test_user_mistakes_are_one_error_line_naming_the_file_or_field(case, untrained, small_mimic, tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text(NOISY_POLICY + "target_epsilom: 3\n")
    model, data = str(untrained), str(small_mimic)
    args = {"missing model": ["--model", str(tmp_path / "gone"), "--data", data],
            "bad data": ["--model", model, "--data", str(tmp_path)],
            "bad policy": ["--model", model, "--data", data, "--dp", str(policy)],
            "no canaries": ["--model", model, "--data", data, "--canaries", "0"],
            "few alternatives": ["--model", model, "--data", data, "--alternatives", "3"]}[case]
    status = main(["audit", "memorisation", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    expected = {"missing model": "gone: no such run directory or checkpoint file",
                "bad data": "not a dataset m3fed can read", "bad policy": "policy.yaml: target_epsilom",
                "no canaries": "--canaries must be an integer of at least 1", "few alternatives": "--alternatives"}
    assert expected[case] in err
    assert not (tmp_path / "out" / "memorisation.json").exists()


def test_an_earlier_audit_is_not_overwritten(plain, run_dir, capsys):
    status = main(["audit", "memorisation", "--model", str(run_dir), "--data", str(trained_tiny()[0]), *AUDIT])
    err = capsys.readouterr().err
    assert status == 2 and "already holds an audit" in err and err.count("\n") == 1
