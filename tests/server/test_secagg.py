"""SecAgg+ through both seams (server/secagg.py, client/app/secagg.py) and Flower's own protocol code.

The sites are in-process: a loopback Grid hands each protocol message to that site's
``secure_train`` with its own Context (as a SuperNode would), so the four SecAgg+ stages, the
masking and the unmasking are Flower's, and the updates are known exactly.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.common.constant import ErrorCode
from flwr.common.secure_aggregation.secaggplus_constants import Key, RECORD_KEY_CONFIGS
from flwr.common import bytes_to_ndarray
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from client.app.secagg import SecAggValueError, check_update, secure_train
from server.secagg import SecAggConfig, SecureGrid

SHAPES = {"clip.a": (40, 25), "clip.b": (300,), "clip.t": (), "lm.c": (7,)}


class LoopbackGrid(Grid):
    """Delivers each message to ``sites[node](msg, context)``; a raise becomes an error reply."""

    def __init__(self, sites: dict) -> None:
        self.sites = sites
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={}, state=RecordDict(), run_config={})
                         for n in sites}
        self.seen: dict[int, list[Message]] = {n: [] for n in sites}

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            self.seen[node].append(msg)
            TaskIdentity._node_id = node  # replies are stamped with the node they come from
            try:
                # A copy, as over the wire: Flower's stages share one content object between messages.
                reply = self.sites[node](copy.deepcopy(msg), self.contexts[node])
            except Exception as exc:  # noqa: BLE001 - a dead site
                reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"[site {node}] {exc}"),
                                reply_to=msg)
            replies.append(reply)
        TaskIdentity._node_id = 0
        return replies

    def set_run(self, run): ...
    run = None
    def create_message(self, *a, **k): raise NotImplementedError
    def get_node_ids(self): return list(self.sites)
    def push_messages(self, messages): raise NotImplementedError
    def pull_messages(self, message_ids): raise NotImplementedError


def global_arrays(rng) -> dict[str, np.ndarray]:
    return {k: np.asarray(rng.normal(0, 3.0, size=s), dtype=np.float32) for k, s in SHAPES.items()}  # |w| well above 1


def make_site(index: int, update: dict, n: int, *, dies: bool = False, refuses: bool = False,
              masked_out: dict | None = None):
    """A site whose local training adds ``update`` to the clip half and reports ``n`` examples."""
    def train_content(content: RecordDict) -> RecordDict:
        if dies:
            raise RuntimeError("site died mid-round")
        start = {k: v.numpy() for k, v in content["arrays"].items()}
        trained = {k: Array(np.asarray(start[k] + update[k], dtype=np.float32)) for k in update}
        return RecordDict({"arrays": ArrayRecord(trained),
                           "metrics": MetricRecord({"num-examples": n, "site-index": index, "seconds": 0.0,
                                                    "bytes-up": 0, "loss": 1.0})})

    def handler(msg: Message, context: Context) -> Message:
        if refuses:  # like a site whose guard refuses the app bundle: an error at the first stage
            raise RuntimeError("app bundle not approved by this site")
        reply = secure_train(msg, context, train_content)
        if masked_out is not None and Key.MASKED_PARAMETERS in reply.content.config_records[RECORD_KEY_CONFIGS]:
            masked_out[index] = [bytes_to_ndarray(b) for b in
                                 reply.content.config_records[RECORD_KEY_CONFIGS][Key.MASKED_PARAMETERS]]
        return reply
    return handler


def run_round(n_sites: int, counts: list[int], *, dead: frozenset = frozenset(), refused: frozenset = frozenset(),
              seed: int = 0, masked_out=None, cfg: SecAggConfig | None = None):
    rng = np.random.default_rng(seed)
    start = global_arrays(rng)
    updates = [{k: rng.normal(0, 0.01, size=SHAPES[k]) for k in ("clip.a", "clip.b", "clip.t")} for _ in range(n_sites)]
    nodes = [1000 + i for i in range(n_sites)]
    grid = LoopbackGrid({node: make_site(i, updates[i], counts[i], dies=i in dead, refuses=i in refused,
                                           masked_out=masked_out)
                         for i, node in enumerate(nodes)})
    cfg = cfg or SecAggConfig(max_weight=float(max(counts)), timeout=30.0)
    server = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={})
    secure = SecureGrid(grid, server, cfg)
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in start.items()}),
                          "config": ConfigRecord({"objective": "contrastive", "global-round": 3})})
    messages = [Message(content, dst_node_id=node, message_type=MessageType.TRAIN) for node in nodes]
    replies = list(secure.send_and_receive(messages))
    return start, updates, replies, secure


def fedavg(start, updates, counts, alive) -> dict[str, np.ndarray]:
    total = sum(counts[i] for i in alive)
    return {k: start[k] + sum(counts[i] * updates[i][k] for i in alive) / total for k in ("clip.a", "clip.b", "clip.t")}


def test_secure_aggregate_equals_plain_fedavg_within_the_stated_quantisation_error():
    # Prepare
    counts = [730, 175, 161, 12]
    # Execute
    start, updates, replies, secure = run_round(4, counts)
    # Assert: every site gets the same aggregate; it is FedAvg of the updates within the bound.
    assert not any(r.has_error() for r in replies)
    expected = fedavg(start, updates, counts, range(4))
    info = secure.rounds[3]
    bound = info["quantization_error_bound"]
    assert info["completed"] and info["sites_aggregated"] == 4 and 0 < bound < 1e-4
    for reply in replies:
        got = reply.content["arrays"]
        assert set(got.keys()) == {"clip.a", "clip.b", "clip.t"}  # the trained half only; lm.* stays the global copy
        for k, v in expected.items():
            err = np.abs(got[k].numpy() - v).max()
            assert err <= bound, (k, err, bound)
    # The bound is not vacuous: the aggregate moved by far more than it.
    assert np.abs(expected["clip.a"] - start["clip.a"]).max() > 100 * bound
    assert [int(r.content["metrics"]["num-examples"]) for r in replies] == counts


def test_what_the_server_receives_from_a_site_is_masked():
    # Prepare
    masked: dict[int, list[np.ndarray]] = {}
    counts = [100, 100, 100]
    # Execute
    _, updates, _, _ = run_round(3, counts, masked_out=masked, seed=1)
    # Assert: the masked vector a site sends is uncorrelated with its true update and near-uniform mod 2^32.
    vector = np.concatenate([a.ravel().astype(np.float64) for a in masked[0]])
    truth = np.concatenate([updates[0][k].ravel() for k in ("clip.a", "clip.b", "clip.t")])
    values = vector[1:1 + truth.size] if vector.size == truth.size + 1 else vector[-truth.size:]
    assert abs(np.corrcoef(values, truth)[0, 1]) < 0.1
    assert values.std() > 0.2 * 2 ** 32 / np.sqrt(12)  # spread over the modulus, not around the update


def test_ten_sites_two_die_mid_round_round_completes_and_aggregate_is_right_for_the_eight():
    # Prepare
    counts = [50 + 10 * i for i in range(10)]
    dead = frozenset({2, 7})
    # Execute
    start, updates, replies, secure = run_round(10, counts, dead=dead, seed=2,
                                                cfg=SecAggConfig(max_weight=float(max(counts)),
                                                                 reconstruction_threshold=0.6, timeout=30.0))
    # Assert
    alive = [i for i in range(10) if i not in dead]
    assert [i for i, r in enumerate(replies) if r.has_error()] == sorted(dead)
    assert all("site died mid-round" in replies[i].error.reason for i in dead)
    expected = fedavg(start, updates, counts, alive)
    bound = secure.rounds[3]["quantization_error_bound"]
    assert secure.rounds[3]["sites_aggregated"] == 8
    # What protected the round is on record: all 10 sites hold shares, 6 of them unmask (0.6 of 10).
    assert secure.rounds[3]["num_shares"] == 10 and secure.rounds[3]["reconstruction_threshold"] == 6
    for i in alive:
        for k, v in expected.items():
            assert np.abs(replies[i].content["arrays"][k].numpy() - v).max() <= bound


def test_a_site_lost_before_sharing_keys_does_not_break_the_round():
    # flwr 1.42's workflow would ask the others for that site's key shares at unmasking (KeyError at every site).
    counts = [60, 70, 80, 90, 100]
    start, updates, replies, secure = run_round(5, counts, refused=frozenset({1}), seed=4,
                                                cfg=SecAggConfig(max_weight=100.0, timeout=30.0))
    assert [i for i, r in enumerate(replies) if r.has_error()] == [1]
    assert "not approved" in replies[1].error.reason
    expected = fedavg(start, updates, counts, [0, 2, 3, 4])
    for k, v in expected.items():
        assert np.abs(replies[0].content["arrays"][k].numpy() - v).max() <= secure.rounds[3]["quantization_error_bound"]


def test_too_many_dead_sites_skip_the_round_and_say_why():
    # Prepare: threshold 3 of 4 shares, two of four sites dead.
    counts = [100] * 4
    # Execute
    _, _, replies, secure = run_round(4, counts, dead=frozenset({0, 1}),
                                      cfg=SecAggConfig(max_weight=100.0, num_shares=1.0, reconstruction_threshold=3,
                                                       timeout=30.0))
    # Assert
    assert all(r.has_error() for r in replies)
    assert not secure.rounds[3]["completed"]
    assert any("halted" in r.error.reason for r in replies[2:])


def test_an_update_secagg_would_clip_is_refused_at_the_site():
    with pytest.raises(SecAggValueError, match="clipping-range"):
        check_update([np.array([0.5, -2.0])], 10, max_weight=10.0, clipping_range=1.0)
    with pytest.raises(SecAggValueError, match="max-weight"):
        check_update([np.array([0.1])], 11, max_weight=10.0, clipping_range=1.0)
    check_update([np.array([0.5, -2.0])], 4, max_weight=10.0, clipping_range=1.0)  # 2.0 * 0.4 fits
