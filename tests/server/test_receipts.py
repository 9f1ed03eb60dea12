"""server.receipts: the server keeps each site's signed ledger head, only ever longer, and shows each
node its own; a round every site refuses (budget or ledger) ends the run cleanly."""
from __future__ import annotations

import json

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from privacy.ledger import Ledger, dataset_fingerprint
from privacy.ledger_head import HEAD_RECORD, RECEIPT_RECORD
from privacy.policy import PrivacyPolicy
from server.declarations import SiteDeclarations
from server.receipts import ReceiptStore
from server.strategy import make_strategy

POLICY = PrivacyPolicy(unit="record", target_epsilon=20.0, target_delta=1e-5, max_grad_norm=1.0,
                       noise_multiplier=1.0)
NODES = (11, 12)


def ledger(tmp_path, site: str, rounds: int) -> Ledger:
    led = Ledger.open(tmp_path / site / "ledger.jsonl", dataset_fingerprint=dataset_fingerprint([("p", b"x")]),
                      policy=POLICY, site=site)
    for r in range(1, rounds + 1):
        led.record(run_id="run", round=r, n_units=10_000, sample_rate=0.01, noise_multiplier=1.0, steps=20)
    return led


def test_a_receipt_only_grows_and_only_from_the_sites_own_signed_heads(tmp_path):
    # Prepare
    store, led = ReceiptStore(tmp_path / "receipts"), ledger(tmp_path, "h11", 1)
    first = led.head()
    led.record(run_id="run", round=2, n_units=10_000, sample_rate=0.01, noise_multiplier=1.0, steps=20)
    second = led.head()
    # Execute / Assert
    assert store.offer("h11", second) and store.get("h11") == second
    assert not store.offer("h11", first)  # shorter: a cut ledger's head never replaces the receipt
    assert not store.offer("h11", {**second, "seq": 7})  # not signed by the site
    assert not store.offer("h12", second)  # another site's head
    other = ledger(tmp_path / "new", "h11", 3).head()  # a new ledger (new key) under the same name
    assert not store.offer("h11", other)
    assert store.get("h11") == second and len(store.events) == 4
    assert json.loads((tmp_path / "receipts" / "h11.json").read_text()) == second


def _declared() -> SiteDeclarations:
    declarations = SiteDeclarations(timeout=5)
    for node in NODES:
        declarations.by_node[node] = {"objectives": ["contrastive"], "examples-contrastive": 50}
        declarations.names[node] = f"h{node}"
    declarations._asked.update(NODES)
    return declarations


class _Nodes:
    def get_node_ids(self):
        return list(NODES)


def _strategy(tmp_path):
    strategy = make_strategy("fedavg", options={}, schedule="contrastive", site_names=[], round_offset=0,
                             total_rounds=3, fraction_train=1.0, min_train_nodes=2, min_available_nodes=2,
                             declarations=_declared())
    strategy.receipts = ReceiptStore(tmp_path / "receipts")
    return strategy


def _configure(strategy):
    start = ArrayRecord({"clip.w": Array(np.zeros(4, np.float32))})
    return {m.metadata.dst_node_id: m for m in strategy.configure_train(1, start, ConfigRecord({}), _Nodes())}


def test_each_node_is_sent_its_own_sites_receipt(tmp_path):
    # Prepare: h11 stated its head (declaration); h12 trains without DP
    strategy = _strategy(tmp_path)
    head = ledger(tmp_path, "h11", 2).head()
    strategy.declarations.heads[11] = head
    # Execute
    messages = _configure(strategy)
    # Assert
    assert dict(messages[11].content[RECEIPT_RECORD]) == head
    assert RECEIPT_RECORD not in messages[12].content.config_records
    assert messages[11].content["arrays"] is messages[12].content["arrays"]  # the model is not copied


def _refusal(msg: Message, reason: str, head: dict | None = None) -> Message:
    node = msg.metadata.dst_node_id
    content = RecordDict({"arrays": ArrayRecord(), "status": ConfigRecord({"reason": reason}),
                          "metrics": MetricRecord({"num-examples": 0, "site-index": -1, "bytes-up": 0,
                                                   "seconds": 0.0, "loss": float("nan"), "epsilon": 1.0}),
                          "site": ConfigRecord({"name": f"h{node}"})})
    if head:
        content[HEAD_RECORD] = ConfigRecord(head)
    return Message(content, reply_to=msg)


def test_a_round_every_site_refuses_ends_the_run_and_keeps_the_heads(tmp_path):
    # Prepare
    strategy = _strategy(tmp_path)
    messages = _configure(strategy)
    head = ledger(tmp_path, "h12", 1).head()
    replies = [_refusal(messages[11], "ledger: /state/ledger.jsonl: truncated: the ledger has 1 entries but its "
                                      "signed head says 2"),
               _refusal(messages[12], "budget: this round would add ε = 0.9, more than max_epsilon_per_round 0.5",
                        head)]
    # Execute
    arrays, _ = strategy.aggregate_train(1, replies)
    # Assert: each site's reason is its status; no site can train, so the run stops cleanly
    sites, log = strategy.round_log[1]["sites"], strategy.round_log[1]
    assert arrays is None and "no site can train in round 1" in log["stopped"]
    assert sites["h11"]["status"].startswith("ledger: /state/ledger.jsonl: truncated")
    assert sites["h12"]["status"].startswith("budget: ")
    assert strategy.receipts.get("h12") == head
