"""The end of a deployed run, without processes: the server sends the final model and then the card to
every connected node (here: the real ClientApp called in-process), and records who kept them."""
from __future__ import annotations

import hashlib
import json
import subprocess

from flwr.app import Context, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from client.app.client_app import app
from server.final_model import deliver_final_model, note_virtual_sites
from server.report import final_model_section
from server.strategy import make_strategy
from shared_model.run_config import RunConfig
from tests.server.run_records import default_tokenizer_sha256, deployment_run, simulation_run


class SiteGrid(Grid):
    """Each connected node is a ClientApp context; ``gone`` nodes are listed but never answer."""

    def __init__(self, contexts: dict[int, Context], gone: tuple[int, ...] = ()) -> None:
        self.contexts, self.gone = contexts, gone
        self.sent: list[str] = []

    def get_node_ids(self):
        return [*self.contexts, *self.gone]

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            self.sent.append(f"{node} {msg.metadata.message_type}")
            if node in self.contexts:
                TaskIdentity._node_id = node  # the reply comes from that node
                replies.append(app(msg, self.contexts[node]))
        TaskIdentity._node_id = 1
        return replies

    def set_run(self, run): ...
    run = None
    def create_message(self, *a, **k): raise NotImplementedError
    def push_messages(self, messages): raise NotImplementedError
    def pull_messages(self, message_ids): raise NotImplementedError


def _site(tmp_path, node: int, name: str, **node_config) -> Context:
    return Context(run_id=5, node_id=node, state=RecordDict(), run_config=RunConfig(run_dir="/srv/r").to_run_config(),
                   node_config={"state-dir": str(tmp_path / name), "site-name": name,
                                "data-path": str(tmp_path / name / "data" / "manifest.jsonl"), **node_config})


def test_each_connected_site_keeps_the_model_and_card_and_the_server_records_who_did(tmp_path):
    # Prepare: site-1 and site-3 (under a policy: its statement comes back with the model), site-2 with
    # another tokenizer (refuses), a node that is gone mid-delivery, and site-x not connected at all
    run = tmp_path / "run"
    deployment_run(run, tokenizer_sha256=default_tokenizer_sha256())
    contexts = {11: _site(tmp_path, 11, "site-1"),
                12: _site(tmp_path, 12, "site-2", **{"text-model": str(tmp_path / "no-such-bert")}),
                13: _site(tmp_path, 13, "site-3", **{"privacy-policy": str(tmp_path / "policy.yaml"),
                                                     "privacy-ledger": str(tmp_path / "site-3" / "ledger.jsonl")})}
    grid = SiteGrid(contexts, gone=(14,))
    strategy = make_strategy("fedavg", schedule="alternate", site_names=[])
    strategy.node_names.update({11: "site-1", 12: "site-2", 13: "site-3"})
    # Execute
    done = deliver_final_model(grid, strategy, run_dir=run, sites=["site-1", "site-2", "site-3", "site-x"], timeout=5)
    # Assert: what each site holds is the server's file, with its hash and the server's card
    served = (run / "model.safetensors").read_bytes()
    digest = hashlib.sha256(served).hexdigest()
    for name in ("site-1", "site-3"):
        folder = tmp_path / name / "model"
        assert (folder / "model.safetensors").read_bytes() == served
        assert (folder / "model.sha256").read_text().split()[0] == digest
        assert (folder / "MODEL_CARD.md").read_text() == (run / "MODEL_CARD.md").read_text()
        assert done["sites"][name] == {"model": "kept", "card": "kept"}
    # The refusal, the silent node and the site that was not there are recorded, not fatal
    assert done["sites"]["site-2"]["model"].startswith("error: CheckpointError") and "card" not in done["sites"]["site-2"]
    assert not (tmp_path / "site-2" / "model" / "model.safetensors").exists()
    assert done["sites"]["node-14"] == {"model": "no reply within the round timeout"}
    assert done["sites"]["site-x"] == {"model": "not connected when the run ended"}
    assert grid.sent.count("14 query.model_card") == 0  # the card goes only to sites holding the model
    results = json.loads((run / "results.json").read_text())
    assert results["final_model"]["sha256"] == digest and results["final_model"]["sites"] == done["sites"]
    # site-3 is text-only: never asked to evaluate, its statement came with the model and reached the card
    assert results["privacy"]["site-3"]["reported_in"] == "final model delivery"
    card = json.loads((run / "model_card.json").read_text())
    assert card["privacy"]["sites"]["site-3"]["line"].startswith("DP policy, but its ledger did not verify")
    assert card["privacy"]["sites"]["site-1"]["line"].startswith("ε 7.485, δ 0.001")
    report = "\n".join(final_model_section(results))
    assert f"sha256 `{digest}`" in report and "| site-1 | kept | kept |" in report
    assert "| site-x | not connected when the run ended | — |" in report


def test_virtual_sites_get_the_hash_of_the_runs_model_not_a_copy(tmp_path):
    run = tmp_path / "run"
    simulation_run(run)
    note_virtual_sites(run, ["site-1", "site-2"])
    for name in ("site-1", "site-2"):
        folder = run / "sites" / name / "model"
        assert [p.name for p in folder.iterdir()] == ["model.sha256"]
        check = subprocess.run(["sha256sum", "-c", "model.sha256"], cwd=folder, capture_output=True, text=True)
        assert check.returncode == 0 and "../../../model.safetensors: OK" in check.stdout
