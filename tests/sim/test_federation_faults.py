"""A real Flower simulation losing a site: the run goes on, or stops cleanly below the minimum."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from shared_model.checkpoint import save_checkpoint
from shared_model.config import get_preset
from shared_model.model import build_model
from sim.simulate import run_simulation
from tests.sim.federations import fed_config

pytestmark = pytest.mark.end_to_end


def test_a_site_that_dies_mid_round_is_reported_and_the_run_goes_on(fed_data, tmp_path):
    # FedAdam here, so Flower's server optimiser also runs end to end and its moments are saved.
    cfg = fed_config(fed_data, tmp_path / "drop", local_epochs=1, drop_sites=1, strategy="fedadam")
    doc = run_simulation(cfg)
    assert (tmp_path / "drop" / "strategy.safetensors").is_file()
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    statuses = {name: [r["sites"][name]["status"] for r in doc["rounds"]] for name in ("site-1", "site-2", "site-3")}
    dead = [name for name, s in statuses.items() if all("injected failure" in x for x in s)]
    assert len(dead) == 1, statuses
    alive = [s for name, s in statuses.items() if name not in dead]
    assert all(x in ("ok", "no data for this objective") for s in alive for x in s)
    assert all(r["auc_macro"] is not None for r in doc["rounds"])


def test_run_stops_cleanly_when_fewer_sites_than_the_minimum_answer(fed_data, tmp_path):
    # 3 sites, one dies from round 1 on, at least 3 must answer: round 1 is not averaged, the run ends.
    # The run starts from a checkpoint (--init), so the model it ends with is that checkpoint's.
    torch.manual_seed(11)
    start = build_model(get_preset("tiny"))
    save_checkpoint(tmp_path / "start.safetensors", start)
    cfg = fed_config(fed_data, tmp_path / "few", local_epochs=1, drop_sites=1, min_live_sites=3, strategy="fedprox",
                  init=str(tmp_path / "start.safetensors"))
    doc = run_simulation(cfg)
    assert [r["round"] for r in doc["rounds"]] == [1]
    assert "minimum is 3" in doc["stopped"] and doc["rounds"][0]["stopped"] == doc["stopped"]
    assert doc["final"]["auc_macro"] is not None and doc["final"]["bleu"]
    assert doc["config"]["init-checkpoint"] == str(tmp_path / "start.safetensors")
    assert f"Started from `{tmp_path / 'start.safetensors'}`" in (tmp_path / "few" / "report.md").read_text()
    final, expected = load_file(str(tmp_path / "few" / "model.safetensors")), start.state_dict()
    assert all(torch.equal(final[k], expected[k]) for k in final), "the server did not start from --init"
