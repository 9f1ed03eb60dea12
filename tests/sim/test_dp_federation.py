"""`m3fed sim --dp`: DP-SGD at every site, ledgers at the sites, refusal when the budget would be passed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from privacy.ledger import Ledger, verify_ledger
from sim.simulate import SimConfig, run_simulation
from sim.synth import generate

pytestmark = pytest.mark.end_to_end

POLICY = """\
unit: record
target_epsilon: 4.0
target_delta: 1.0e-3
accountant: prv
max_grad_norm: 1.0
noise_multiplier: 1.0
poisson_sampling: true
batch_size: 8
release: [num-examples, train-loss]
"""
SMALL_BUDGET = 2.5


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dp")
    generate(root / "data", patients=100, seed=5, difficulty=0.0)
    # A budget each site's next round passes within the 4 rounds (round ε is deterministic: σ is fixed).
    (root / "policy.yaml").write_text(POLICY.replace("target_epsilon: 4.0", f"target_epsilon: {SMALL_BUDGET}"))
    cfg = SimConfig(data=str(root / "data"), out=str(root / "run"), sites=3, rounds=4, languages=("en", "zh", "en"),
                    text_only_sites=1, local_epochs=1, batch_size=8, seed=0, timeout=1200, compare=False,
                    schedule="alternate", dp=str(root / "policy.yaml"))
    run_simulation(cfg)
    return root / "run"


def test_sites_refuse_before_passing_their_budget_and_the_run_ends_cleanly(dp_run):
    doc = json.loads((dp_run / "results.json").read_text(encoding="utf-8"))
    refused = {}
    for r in doc["rounds"]:
        for site, s in r["sites"].items():
            if s["status"].startswith("budget exhausted"):
                refused.setdefault(site, r["round"])
            elif site in refused:  # once refused, a site never trains again on this budget
                assert not s["status"] == "ok", (site, r["round"], s)
            if s["status"] == "ok":
                assert 0 < s["epsilon"] <= SMALL_BUDGET
    assert refused, "the small budget should run out within 4 rounds"
    for site in ("site-1", "site-2", "site-3"):
        ledger = dp_run / "sites" / site / "ledger.jsonl"
        assert verify_ledger(ledger) == []
        assert Ledger(ledger).epsilon() <= SMALL_BUDGET
        assert doc["privacy"][site]["verified"] and doc["privacy"][site]["epsilon"] <= SMALL_BUDGET


def test_privacy_verify_fails_after_one_ledger_line_is_edited(dp_run, tmp_path):
    source = dp_run / "sites" / "site-1" / "ledger.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 2  # header + at least one released round
    entry = json.loads(lines[1])
    entry["noise_multiplier"] = entry["noise_multiplier"] * 2  # claim more noise than was used
    lines[1] = json.dumps(entry, ensure_ascii=False)
    edited = tmp_path / "ledger.jsonl"
    edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert verify_ledger(edited)


def test_dp_sites_under_secagg_train_account_and_refuse_as_without_it(tmp_path):
    # Prepare: DP-SGD at each site before masking; the server sees only the secure sum.
    generate(tmp_path / "data", patients=60, seed=6, difficulty=0.0)
    (tmp_path / "policy.yaml").write_text(POLICY)
    cfg = SimConfig(data=str(tmp_path / "data"), out=str(tmp_path / "run"), sites=3, rounds=2,
                    languages=("en", "zh", "en"), text_only_sites=1, local_epochs=1, batch_size=8, seed=0,
                    timeout=1200, compare=False, schedule="alternate", dp=str(tmp_path / "policy.yaml"), secagg=True)
    # Execute
    run_simulation(cfg)
    # Assert
    doc = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert len(doc["rounds"]) == 2
    for r in doc["rounds"]:
        assert r["secagg"]["completed"], r
        for site, s in r["sites"].items():
            assert s["status"] in ("ok", "no data for this objective") or s["status"].startswith("budget exhausted")
            if s["status"] == "ok":
                assert 0 < s["epsilon"] <= 4.0
    for site in ("site-1", "site-2", "site-3"):
        ledger = tmp_path / "run" / "sites" / site / "ledger.jsonl"
        assert verify_ledger(ledger) == [] and Ledger(ledger).epsilon() <= 4.0


def test_the_model_card_states_each_sites_epsilon_and_delta(dp_run):
    card = json.loads((dp_run / "model_card.json").read_text(encoding="utf-8"))
    text = (dp_run / "MODEL_CARD.md").read_text(encoding="utf-8")
    doc = json.loads((dp_run / "results.json").read_text(encoding="utf-8"))
    for site in ("site-1", "site-2", "site-3"):
        line = card["privacy"]["sites"][site]
        assert line["dp"] and line["delta"] == 1e-3 and line["epsilon"] == doc["privacy"][site]["epsilon"]
        assert f"ε {line['epsilon']:.3f}, δ 0.001 (record-level DP-SGD, prv accountant, ledger verified" in text
    assert "no DP" not in text
