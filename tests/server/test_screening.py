"""Screening of replies, robust aggregation and their refusals (real Messages, no runtime)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from client.app.faults import POISONS, poisoned
from server.aggregation import Aggregation
from server.screening import ScreeningConfig, screen_reply
from server.strategy import make_strategy
from shared_model.config import get_preset, trained_keys
from shared_model.model import build_model

NODES = (11, 12, 13, 14, 15, 16, 17)


@pytest.fixture(scope="module")
def tiny():
    """The tiny model's state and an honest contrastive update of it (what a site sends)."""
    state = {k: v.clone() for k, v in build_model(get_preset("tiny")).state_dict().items()}
    keys = trained_keys(state, "contrastive")
    gen = torch.Generator().manual_seed(0)
    trained = {k: state[k] + 1e-3 * torch.randn(state[k].shape, generator=gen) for k in keys}
    return state, trained


def _content(arrays: dict, n: int) -> RecordDict:
    return RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}),
                       "metrics": MetricRecord({"num-examples": n})})


@pytest.mark.parametrize("kind", POISONS)
def test_every_injected_fault_is_rejected_and_the_honest_reply_is_not(tiny, kind):
    # Prepare: the reply a site poisoned with `kind` sends (client/app/faults.py), from an honest update
    state, trained = tiny
    start = {k: v.numpy() for k, v in state.items()}
    bad, n = poisoned(kind, trained, state, 40)
    # Execute
    honest = screen_reply(_content(trained, 40), start=start, objective="contrastive", declared=40,
                          cfg=ScreeningConfig())
    verdict = screen_reply(_content(bad, n), start=start, objective="contrastive", declared=40, cfg=ScreeningConfig())
    # Assert
    assert honest.problem is None and honest.examples == 40 and 0 < honest.update_norm
    expected = {"nan": "non-finite", "inf": "non-finite", "scale": "update norm", "shape": "wrong shape (1,)",
                "weight": "num-examples: 1000000000 is more than the 40"}[kind]
    assert verdict.problem is not None and expected in verdict.problem


@pytest.mark.parametrize("change, words", [
    (lambda a, m: a.pop("clip.logit_scale"), "missing tensors: 1"),
    (lambda a, m: a.__setitem__("lm.extra", np.zeros(2, np.float32)), "unexpected tensor 'lm.extra'"),
    (lambda a, m: a.__setitem__("clip.logit_scale", np.float64(1.0)), "wrong dtype float64"),
    (lambda a, m: m.__setitem__("num-examples", 2.5), "not a whole number"),
    (lambda a, m: m.pop("num-examples"), "not a whole number"),
])
def test_keys_dtypes_and_counts_are_exactly_what_an_honest_site_sends(tiny, change, words):
    state, trained = tiny
    arrays, metrics = {k: v.numpy() for k, v in trained.items()}, {"num-examples": 40}
    change(arrays, metrics)
    content = RecordDict({"arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}),
                          "metrics": MetricRecord(metrics)})
    verdict = screen_reply(content, start={k: v.numpy() for k, v in state.items()}, objective="contrastive",
                           declared=None, cfg=ScreeningConfig())
    assert words in verdict.problem


def test_a_site_that_declared_nothing_cannot_claim_examples_and_the_bound_is_per_value(tiny):
    state, trained = tiny
    start = {k: v.numpy() for k, v in state.items()}
    verdict = screen_reply(_content(trained, 5), start=start, objective="contrastive", declared=0,
                           cfg=ScreeningConfig())
    assert "declared no training examples" in verdict.problem
    # The norm bound scales with √(values): an RMS change of 2e-3 per value passes 1e-2, fails 1e-3.
    far = {k: v + 2e-3 for k, v in trained.items()}
    assert screen_reply(_content(far, 5), start=start, objective="contrastive", declared=None,
                        cfg=ScreeningConfig(max_update_rms=1e-2)).problem is None
    assert "update norm" in screen_reply(_content(far, 5), start=start, objective="contrastive", declared=None,
                                         cfg=ScreeningConfig(max_update_rms=1e-3)).problem
    with pytest.raises(ValueError, match="max-update-rms"):
        ScreeningConfig(max_update_rms=-1)


@pytest.mark.parametrize("text, words", [
    ("mean", "--aggregation / aggregation must be"), ("trimmed:0.5", "must be"), ("krum", "must be"),
    ("bulyan:-1", "must be"), ("median:1", "must be"),
])
def test_unknown_aggregations_are_refused(text, words):
    with pytest.raises(ValueError, match=words):
        Aggregation.parse(text)


@pytest.mark.parametrize("text, kwargs, words", [
    ("median", {"secagg": True}, "sees only their sum"),
    ("krum:1", {"site_dp": True}, "site-level DP"),
    ("trimmed:0.2", {"strategy": "fedprox"}, "--strategy fedavg only"),
    ("bulyan:1", {"sites": 6}, "at least 7 sites"),
    ("multikrum:1", {"sites": 4}, "at least 5 sites"),
])
def test_aggregations_that_cannot_work_are_refused_with_the_reason(text, kwargs, words):
    args = {"strategy": "fedavg", "secagg": False, "site_dp": False, "sites": 10, **kwargs}
    with pytest.raises(ValueError, match=words):
        Aggregation.parse(text).check(**args)
    assert str(Aggregation.parse(text)) == text


class _Grid:
    def get_node_ids(self):
        return list(NODES)


def _aggregate(text: str, values: dict[int, float], examples: dict[int, int] | None = None):
    strategy = make_strategy("fedavg", aggregation=Aggregation.parse(text), schedule="contrastive", site_names=[],
                             total_rounds=1, fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    start = ArrayRecord({"clip.w": Array(np.zeros(3, np.float32))})
    messages = {m.metadata.dst_node_id: m for m in strategy.configure_train(1, start, ConfigRecord({}), _Grid())}
    replies = [Message(RecordDict({"arrays": ArrayRecord({"clip.w": Array(np.full(3, v, np.float32))}),
                                   "metrics": MetricRecord({"num-examples": (examples or {}).get(node, 10),
                                                            "site-index": -1, "bytes-up": 1, "seconds": 0.1})}),
                       reply_to=messages[node]) for node, v in values.items()]
    arrays, _ = strategy.aggregate_train(1, replies)
    return (None if arrays is None else float(arrays["clip.w"].numpy()[0])), strategy.round_log[1]


@pytest.mark.parametrize("text, expected", [
    ("fedavg", 2.0 / 7), ("median", 0.2), ("trimmed:0.2", (0.15 + 0.2 + 0.2 + 0.25 + 0.3) / 5),
    ("krum:1", 0.2), ("multikrum:1", 1.2 / 6),  # the n − F best-scored: all but the outlier
    ("bulyan:1", (0.2 + 0.2 + 0.25) / 3),  # of the 5 Krum picks, per value the 3 nearest their median
])
def test_flowers_robust_aggregators_bound_one_outlier_under_the_screening_bound(text, expected):
    # Six honest sites in 0.1-0.3 and one well-formed outlier at 0.8 (under max-update-rms).
    got, _ = _aggregate(text, {11: 0.1, 12: 0.2, 13: 0.2, 14: 0.3, 15: 0.8, 16: 0.25, 17: 0.15})
    assert got == pytest.approx(expected, abs=1e-6)


def test_too_few_accepted_updates_for_bulyan_keep_the_model_and_say_why():
    got, log = _aggregate("bulyan:1", {11: 0.1, 12: 0.2, 13: 0.3})
    assert got is None and "needs at least 7 accepted updates, got 3" in log["aggregation"]


def test_a_malformed_evaluation_reply_is_rejected_not_fatal():
    strategy = make_strategy("fedavg", schedule="contrastive", site_names=["a", "b"], total_rounds=1,
                             fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
                             min_available_nodes=1)
    request = Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=11, message_type="evaluate")
    good = Message(RecordDict({"metrics": MetricRecord({"site-index": 0, "num-examples": 4, "auc-macro": 0.7,
                                                        "bleu4": 0.2})}), reply_to=request)
    bad = Message(RecordDict({"metrics": MetricRecord({"site-index": 1, "num-examples": 4, "auc-macro": 7.0})}),
                  reply_to=request)
    strategy.aggregate_evaluate(1, [good, bad])
    assert strategy.site_eval[1]["a"]["status"] == "ok"
    assert strategy.site_eval[1]["b"]["status"] == "rejected: auc-macro is not a fraction in [0, 1]"


def test_under_secagg_replies_carry_the_sum_and_are_not_screened_but_still_normalised():
    # SecureGrid hands every site the unmasked aggregate; its clear metrics differ (DP site or not).
    strategy = make_strategy("fedavg", screening=None, schedule="contrastive", site_names=[], total_rounds=1,
                             fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    start = ArrayRecord({"clip.w": Array(np.zeros(3, np.float32))})
    messages = list(strategy.configure_train(1, start, ConfigRecord({}), _Grid()))[:2]
    aggregate = ArrayRecord({"clip.w": Array(np.full(3, 5.0, np.float32))})  # far beyond any per-reply bound
    replies = [Message(RecordDict({"arrays": aggregate, "metrics": MetricRecord(m)}), reply_to=msg)
               for msg, m in zip(messages, [{"num-examples": 10, "site-index": -1, "epsilon": 1.0},
                                            {"num-examples": 30, "site-index": -1, "loss": 2.0}])]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert np.allclose(arrays["clip.w"].numpy(), 5.0)
    sites = strategy.round_log[1]["sites"]
    answered = [sites[f"node-{m.metadata.dst_node_id}"] for m in messages]
    assert all(s["status"] == "ok" and "update_norm" not in s for s in answered)


@pytest.mark.parametrize("rc, words", [
    ({"aggregation": "median", "secagg": True}, "sees only their sum"),
    ({"aggregation": "krum:1", "site-dp-noise-multiplier": 1.0}, "site-level DP"),
    ({"aggregation": "bulyan:1", "min-sites": 5}, "at least 7 sites"),
    ({"aggregation": "trimmed:0.7"}, "aggregation must be"),
    ({"max-update-rms": -2.0}, "max-update-rms"),
])
def test_m3fed_run_meets_the_same_refusals_in_the_server_app(rc, words):
    from server.server_app import trust_settings
    from shared_model.run_config import RunConfig

    with pytest.raises(ValueError, match=words):
        trust_settings(RunConfig.from_run_config({"min-sites": 10, **rc}))
    aggregation, screening, _ = trust_settings(RunConfig(min_sites=3, aggregation="median"))
    assert str(aggregation) == "median" and screening.max_update_rms > 0
    assert trust_settings(RunConfig(min_sites=3, secagg=True))[1] is None  # nothing single to screen under SecAgg+
