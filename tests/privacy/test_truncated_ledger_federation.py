"""Issue F, must show: a DP federation of 2 rounds; one site's ledger loses its last line; `m3fed privacy
verify` fails on it, and a further round (`--resume --rounds 3`) is refused at that site with a status
naming the ledger while the other sites train."""
from __future__ import annotations

import json

import pytest

from privacy.ledger import Ledger
from sim.m3fed_command import main
from sim.synth import generate

POLICY = """\
unit: record
target_epsilon: 50.0
target_delta: 1.0e-3
accountant: rdp
max_grad_norm: 1.0
noise_multiplier: 1.0
batch_size: 8
release: [num-examples, train-loss]
"""


@pytest.mark.slow  # two Flower simulations (a run and its resume), 3 DP rounds of 3 small sites: minutes
@pytest.mark.timeout(2400)
def test_a_cut_ledger_fails_verify_and_its_site_sits_out_the_resumed_round(tmp_path, capsys):
    # Prepare: 3 DP sites with images, 2 contrastive rounds
    generate(tmp_path / "data", patients=36, seed=7, difficulty=0.0)
    (tmp_path / "policy.yaml").write_text(POLICY)
    run = tmp_path / "run"
    assert main(["sim", "--data", str(tmp_path / "data"), "--out", str(run), "--sites", "3", "--rounds", "2",
                 "--text-only-sites", "0", "--languages", "en", "zh", "en", "--local-epochs", "1",
                 "--batch-size", "8", "--schedule", "contrastive", "--dp", str(tmp_path / "policy.yaml"),
                 "--no-compare", "--seed", "0"]) == 0
    ledger = run / "sites" / "site-2" / "ledger.jsonl"
    lines = ledger.read_text(encoding="utf-8").splitlines()
    assert len(Ledger(ledger).entries()) == 2
    # Execute 1: the last round's entry removed (ε refunded, the chain of the rest intact)
    ledger.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    capsys.readouterr()
    code = main(["privacy", "verify", "--ledger", str(ledger)])
    # Assert 1
    out = capsys.readouterr().out
    assert code == 1 and "truncated" in out and "1 entry missing" in out
    # Execute 2: one more round on the same run directory
    assert main(["sim", "--resume", str(run), "--rounds", "3"]) == 0
    # Assert 2: that site refused, naming its ledger; the others trained; the cut ledger was not extended
    doc = json.loads((run / "results.json").read_text(encoding="utf-8"))
    third = next(r for r in doc["rounds"] if r["round"] == 3)["sites"]
    assert third["site-2"]["status"].startswith(f"ledger: {ledger}") and "truncated" in third["site-2"]["status"]
    assert third["site-1"]["status"] == third["site-3"]["status"] == "ok"
    assert len(Ledger(ledger).entries()) == 1
    assert [len(Ledger(run / "sites" / s / "ledger.jsonl").entries()) for s in ("site-1", "site-3")] == [3, 3]
    assert not doc["privacy"]["site-2"]["verified"] and doc["privacy"]["site-1"]["verified"]
    # The server kept every site's signed head as its receipt, site-2's from before the cut.
    receipt = json.loads((run / "receipts" / "site-2.json").read_text(encoding="utf-8"))
    assert receipt["seq"] == 2 and receipt["site"] == "site-2"
