"""A real Flower simulation (``flwr run`` on the local simulation runtime): 3 sites, 2 rounds."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shared_model.tokenizer import load_tokenizer
from sim.simulate import SimConfig, run_simulation
from sim.synth import generate


@pytest.fixture(scope="module")
def federated_run(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("fed_data")
    generate(data, patients=100, seed=5, difficulty=0.0)
    out = tmp_path_factory.mktemp("fed_run")
    run_simulation(SimConfig(data=str(data), out=str(out), sites=3, rounds=2, languages=("en", "zh", "en"),
                             text_only_sites=1, local_epochs=4, batch_size=16, seed=0, timeout=1200))
    return out


def test_results_schema_and_per_site_rounds(federated_run):
    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "m3fed.results/1" and doc["mode"] == "federated"
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    assert [r["objective"] for r in doc["rounds"]] == ["contrastive", "report-generation"]
    for r in doc["rounds"]:
        assert set(r["sites"]) == {"site-1", "site-2", "site-3"}
        for site in r["sites"].values():
            assert site["bytes_down"] > 0 and site["bytes_up"] > 0 and "epsilon" in site
    contrastive = doc["rounds"][0]["sites"]
    assert contrastive["site-3"]["examples"] == 0 and contrastive["site-3"]["status"] != "ok"  # text-only
    assert doc["rounds"][1]["sites"]["site-3"]["status"] == "ok"
    assert set(doc["final"]["bleu"]) == {"en", "zh"}
    # No patient at two sites.
    owners = {}
    for site in ("site-1", "site-2", "site-3"):
        for line in (federated_run / "sites" / site / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
            owners.setdefault(json.loads(line)["patient_id"], set()).add(site)
    assert owners and all(len(s) == 1 for s in owners.values())


def test_global_model_changed_and_learned(federated_run):
    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    initial, final = doc["initial"], doc["final"]
    assert (federated_run / "model.safetensors").is_file()
    assert final["auc_macro"] > initial["auc_macro"] + 0.05, (initial, final["auc_per_label"])
    # The decoder starts at the uniform-guess loss ln(vocab) ~ 9.03 nats per token; after one
    # report-generation round every site's last local epoch must be at least one nat better.
    lm_losses = [site["loss"] for site in doc["rounds"][1]["sites"].values()]
    assert all(loss < math.log(load_tokenizer().vocab_size) - 1.0 for loss in lm_losses), lm_losses
