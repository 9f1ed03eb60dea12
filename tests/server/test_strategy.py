"""Round bookkeeping over Flower's strategies, driven with real Messages (no runtime)."""
from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict

from server.declarations import SiteDeclarations
from server.strategy import make_strategy


def _round(strategy, server_round: int, start: dict, trained: dict) -> dict:
    arrays = ArrayRecord({k: Array(v) for k, v in start.items()})
    strategy.configure_train(server_round, arrays, ConfigRecord({}), _Grid())
    request = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=11, message_type="train")
    reply = Message(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in trained.items()}),
                                "metrics": MetricRecord({"num-examples": 5, "site-index": 0, "bytes-up": 1,
                                                         "seconds": 0.1, "loss": 1.0}),
                                "site": ConfigRecord({"name": "hospital-a"})}), reply_to=request)
    arrays, _ = strategy.aggregate_train(server_round, [reply])
    return {k: v.numpy() for k, v in arrays.items()}


class _Grid:
    def get_node_ids(self):
        return [11]


def _fedadam(offset: int):
    return make_strategy("fedadam", options={"eta": 0.1, "eta_l": 0.1}, schedule="contrastive", site_names=[],
                         round_offset=offset, total_rounds=5, fraction_train=1.0, min_train_nodes=1,
                         min_available_nodes=1)


def test_resumed_fedadam_continues_the_bias_correction_of_the_global_round():
    start, trained = {"clip.w": np.zeros(3, np.float32)}, {"clip.w": np.ones(3, np.float32)}
    straight = _fedadam(0)
    for r in (1, 2, 3):
        expected = _round(straight, r, start, trained)
    resumed = _fedadam(2)  # Flower calls the third round "1" after a resume at round 2
    resumed.m_t, resumed.v_t = straight_moments(start, trained)
    got = _round(resumed, 1, start, trained)
    assert np.allclose(got["clip.w"], expected["clip.w"], atol=1e-7)
    assert resumed.round_log[3]["sites"]["hospital-a"]["status"] == "ok"  # the site's own name


def straight_moments(start, trained):
    """The moments an uninterrupted run holds after two rounds of the same update."""
    two = _fedadam(0)
    for r in (1, 2):
        _round(two, r, start, trained)
    return two.m_t, two.v_t


def test_a_tied_tensor_sent_once_is_aggregated_under_both_its_names():
    from shared_model.config import ALIASES
    alias, key = next(iter(ALIASES.items()))
    strategy = make_strategy("fedavg", options={}, schedule="report-generation", site_names=[], round_offset=0,
                             total_rounds=1, fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    start = {key: np.zeros(3, np.float32), alias: np.zeros(3, np.float32), "clip.w": np.zeros(2, np.float32)}
    got = _round(strategy, 1, start, {key: np.ones(3, np.float32)})
    assert np.array_equal(got[key], np.ones(3)) and np.array_equal(got[alias], np.ones(3))
    assert np.array_equal(got["clip.w"], np.zeros(2))


class _DeclaringGrid:
    """Answers the declaration query: node -> its objectives, or None for a site whose app fails."""

    def __init__(self, declared: dict) -> None:
        self.declared, self.queried, self.images = declared, [], {}

    def get_node_ids(self):
        return list(self.declared)

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for m in messages:
            node = m.metadata.dst_node_id
            self.queried.append(node)
            if self.declared[node] is None:
                replies.append(Message(Error(code=0, reason="[site h13] data unreadable"), reply_to=m))
                continue
            replies.append(Message(RecordDict({
                "declaration": ConfigRecord({"objectives": self.declared[node], "languages": ["zh"],
                                             "images": self.images.get(node, False),
                                             **{f"examples-{o}": 40 for o in self.declared[node]}}),
                "metrics": MetricRecord({"site-index": -1, "epsilon": 0.5}),
                "site": ConfigRecord({"name": f"h{node}"})}), reply_to=m))
        return replies


def test_a_round_goes_only_to_the_sites_that_declared_its_objective():
    grid = _DeclaringGrid({11: ["contrastive", "report-generation"], 12: ["report-generation"], 13: None})
    strategy = make_strategy("fedavg", options={}, schedule="contrastive", site_names=[], round_offset=0,
                             total_rounds=2, fraction_train=1.0, min_train_nodes=1, min_available_nodes=3,
                             declarations=SiteDeclarations(timeout=5))
    arrays = ArrayRecord({"clip.w": Array(np.zeros(2, np.float32))})
    sent = {m.metadata.dst_node_id: m for m in strategy.configure_train(1, arrays, ConfigRecord({}), grid)}
    # 12 has no images; 13 could not answer, so it is sent the round and its reply will say why
    assert sorted(sent) == [11, 13] and sorted(grid.queried) == [11, 12, 13]
    reply = Message(RecordDict({"arrays": ArrayRecord({"clip.w": Array(np.ones(2, np.float32))}),
                                "metrics": MetricRecord({"num-examples": 5, "site-index": -1, "bytes-up": 8,
                                                         "seconds": 0.1, "loss": 1.0}),
                                "site": ConfigRecord({"name": "h11"})}), reply_to=sent[11])
    got, _ = strategy.aggregate_train(1, [reply])
    assert np.array_equal(got["clip.w"].numpy(), np.ones(2))
    sites = strategy.round_log[1]["sites"]
    assert sites["h12"]["status"] == "no data for this objective"
    assert sites["h12"]["bytes_down"] == 0 and sites["h12"]["epsilon"] == 0.5  # its ledger's ε, as declared
    assert sites["h11"]["status"] == "ok" and sites["node-13"]["status"].startswith("no reply")
    assert strategy.declarations.by_site() == {
        "h11": {"objectives": ["contrastive", "report-generation"], "languages": ["zh"], "images": False,
                "examples-contrastive": 40, "examples-report-generation": 40},
        "h12": {"objectives": ["report-generation"], "languages": ["zh"], "images": False,
                "examples-report-generation": 40}}
    strategy.configure_train(2, arrays, ConfigRecord({}), grid)
    assert sorted(grid.queried) == [11, 12, 13]  # each node is asked once


def test_a_site_without_images_is_not_asked_to_evaluate():
    grid = _DeclaringGrid({11: ["contrastive", "report-generation"], 12: ["report-generation"]})
    grid.images = {11: True, 12: False}
    strategy = make_strategy("fedavg", options={}, schedule="contrastive", site_names=[], round_offset=0,
                             total_rounds=4, client_eval_every=2, fraction_train=1.0, fraction_evaluate=1.0,
                             min_train_nodes=1, min_evaluate_nodes=1, min_available_nodes=2,
                             declarations=SiteDeclarations(timeout=5))
    arrays = ArrayRecord({"clip.w": Array(np.zeros(2, np.float32))})
    strategy.configure_train(1, arrays, ConfigRecord({}), grid)
    asked = [m.metadata.dst_node_id for m in strategy.configure_evaluate(2, arrays, ConfigRecord({}), grid)]
    assert asked == [11]
    reply = Message(RecordDict({"metrics": MetricRecord({"num-examples": 4, "site-index": -1, "auc-macro": 0.7,
                                                         "bleu4": 0.2, "bleu4-zh": 0.2}),
                                "site": ConfigRecord({"name": "h11"})}), reply_to=next(iter(
                                    strategy.configure_evaluate(2, arrays, ConfigRecord({}), grid))))
    strategy.aggregate_evaluate(2, [reply])
    per_site = strategy.site_eval[2]
    assert per_site["h11"]["status"] == "ok" and per_site["h11"]["auc_macro"] == 0.7
    assert per_site["h12"] == {"status": "not asked: the site declared no images", "test_images": 0}
    # Round 3 is not an evaluation round: Flower still calls aggregate_evaluate, and nothing is recorded.
    assert list(strategy.configure_evaluate(3, arrays, ConfigRecord({}), grid)) == []
    strategy.aggregate_evaluate(3, [])
    assert 3 not in strategy.site_eval


# --- One bad reply never breaks the global model or the run (issue F, holes 2 and 3) -----------------

NODES = (11, 12, 13)
START = {"clip.w": np.zeros(4, np.float32), "clip.b": np.zeros((), np.float32), "lm.w": np.full(3, 0.5, np.float32)}


class _Nodes:
    def get_node_ids(self):
        return list(NODES)


def _declared(count: int = 50) -> SiteDeclarations:
    """What each node said before round 1 (already asked: no query goes out)."""
    declarations = SiteDeclarations(timeout=5)
    for node in NODES:
        declarations.by_node[node] = {"objectives": ["contrastive", "report-generation"],
                                      "examples-contrastive": count, "examples-report-generation": count}
        declarations.names[node] = f"h{node}"
    declarations._asked.update(NODES)
    return declarations


def _strategy(**kw):
    return make_strategy("fedavg", options={}, schedule="contrastive", site_names=[], round_offset=0, total_rounds=3,
                         fraction_train=1.0, min_train_nodes=3, min_available_nodes=3, declarations=_declared(), **kw)


def _reply(msg: Message, arrays: dict, metrics: dict) -> Message:
    node = msg.metadata.dst_node_id
    return Message(RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}),
                               "metrics": MetricRecord({"site-index": -1, "bytes-up": 1, "seconds": 0.1, **metrics}),
                               "site": ConfigRecord({"name": f"h{node}"})}), reply_to=msg)


def _honest(value: float) -> dict:
    return {"clip.w": np.full(4, value, np.float32), "clip.b": np.asarray(value, np.float32)}


def _play(strategy, bad: dict | None = None, bad_metrics: dict | None = None):
    """Nodes 12 and 13 send honest updates (+0.1, +0.3, 10 examples each); node 11 sends ``bad``."""
    messages = {m.metadata.dst_node_id: m for m in strategy.configure_train(
        1, ArrayRecord({k: Array(v) for k, v in START.items()}), ConfigRecord({}), _Nodes())}
    replies = [_reply(messages[12], _honest(0.1), {"num-examples": 10, "loss": 1.0}),
               _reply(messages[13], _honest(0.3), {"num-examples": 10, "loss": 1.0}),
               _reply(messages[11], _honest(0.2) if bad is None else bad,
                      {"num-examples": 10, "loss": 1.0, **(bad_metrics or {})})]
    arrays, _ = strategy.aggregate_train(1, replies)
    return ({k: v.numpy() for k, v in arrays.items()} if arrays is not None else None), strategy.round_log[1]["sites"]


@pytest.mark.parametrize("bad, bad_metrics, words", [
    ({"clip.w": np.array([np.nan, 0, 0, 0], np.float32), "clip.b": np.float32(0)}, {}, "non-finite"),
    ({"clip.w": np.ones(1, np.float32), "clip.b": np.float32(0)}, {}, "wrong shape (1,)"),  # broadcast before
    (_honest(0.6), {"num-examples": 10**9}, "num-examples: 1000000000 is more than the 50"),
    (_honest(0.6), {"num-examples": -10}, "num-examples: -10 is negative"),
    ({"clip.w": np.full(4, np.inf, np.float32), "clip.b": np.float32(0)}, {}, "non-finite"),
    ({k: v * 1e6 for k, v in _honest(0.2).items()}, {}, "update norm"),
])
def test_a_bad_reply_is_rejected_and_the_others_are_averaged(bad, bad_metrics, words):
    arrays, sites = _play(_strategy(), bad, bad_metrics)
    assert np.allclose(arrays["clip.w"], 0.2) and np.allclose(arrays["clip.b"], 0.2)  # the two honest ones
    assert np.array_equal(arrays["lm.w"], START["lm.w"])
    assert sites["h11"]["status"].startswith("rejected: ") and words in sites["h11"]["status"]
    assert sites["h11"]["examples"] == 0 and sites["h12"]["status"] == sites["h13"]["status"] == "ok"


def test_an_honest_round_passes_screening_untouched():
    arrays, sites = _play(_strategy())
    assert all(s["status"] == "ok" for s in sites.values()) and np.allclose(arrays["clip.w"], 0.2)
    assert sites["h11"]["update_norm"] == pytest.approx(0.2 * 5 ** 0.5, rel=1e-5)


def test_a_reply_with_other_metric_keys_cannot_end_the_run():
    # A DP site releases ε but not its loss; another adds a key and a list: Flower's consistency
    # check used to raise InconsistentMessageReplies and end the whole run.
    strategy = _strategy()
    messages = {m.metadata.dst_node_id: m for m in strategy.configure_train(
        1, ArrayRecord({k: Array(v) for k, v in START.items()}), ConfigRecord({}), _Nodes())}
    replies = [_reply(messages[11], _honest(0.1), {"num-examples": 10, "epsilon": 0.7}),
               _reply(messages[12], _honest(0.2), {"num-examples": 10, "loss": 1.0}),
               _reply(messages[13], _honest(0.3), {"num-examples": 10, "loss": float("nan"), "extra": [1.0, 2.0]})]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert np.allclose(arrays["clip.w"].numpy(), 0.2)
    sites = strategy.round_log[1]["sites"]
    assert sites["h11"]["epsilon"] == 0.7 and sites["h11"]["loss"] is None
    assert sites["h12"]["epsilon"] is None and sites["h12"]["loss"] == 1.0 and sites["h13"]["loss"] is None


def test_inf_under_site_level_dp_is_rejected_before_clipping():
    from server.site_dp import WEIGHT_KEY, SiteDPConfig, SiteLevelDP

    dp = SiteLevelDP(_strategy(weighted_by_key=WEIGHT_KEY), SiteDPConfig(noise_multiplier=1e-9, clipping_norm=1.0))
    arrays, sites = _play(dp, {"clip.w": np.full(4, np.inf, np.float32), "clip.b": np.float32(0)})
    assert np.isfinite(arrays["clip.w"]).all() and sites["h11"]["status"].startswith("rejected: non-finite")
    # The rejected site counts as a zero update: K = 3 sites asked, two clipped updates summed.
    assert np.allclose(arrays["clip.w"], (0.1 + 0.3) / 3, atol=1e-6)


@pytest.mark.parametrize("content, words", [
    (lambda msg: RecordDict({"metrics": MetricRecord({"num-examples": 10})}), "layout"),
    (lambda msg: RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in _honest(0.2).items()}),
                             "metrics": MetricRecord({"num-examples": 10}), "more": MetricRecord({"x": 1.0})}),
     "layout"),
    (lambda msg: RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in _honest(0.2).items()}),
                             "metrics": MetricRecord({"loss": 1.0})}), "num-examples: None"),
    (lambda msg: RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in _honest(0.2).items()}),
                             "metrics": MetricRecord({"num-examples": 10, "site-index": [1, 2]}),
                             "site": ConfigRecord({"nom": "x"}), "status": ConfigRecord({})}), None),
])
def test_a_malformed_reply_never_crashes_the_round(content, words):
    strategy = _strategy()
    messages = {m.metadata.dst_node_id: m for m in strategy.configure_train(
        1, ArrayRecord({k: Array(v) for k, v in START.items()}), ConfigRecord({}), _Nodes())}
    replies = [_reply(messages[12], _honest(0.1), {"num-examples": 10}),
               _reply(messages[13], _honest(0.3), {"num-examples": 10}),
               Message(content(messages[11]), reply_to=messages[11])]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert np.allclose(arrays["clip.w"].numpy(), 0.2)
    status = strategy.round_log[1]["sites"]["h11"]["status"]
    assert status.startswith("rejected: ") and words in status if words else status == "declined"
