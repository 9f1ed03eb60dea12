"""Compressed updates (update-dtype fp16 / int8) reach screening and the average as fp32 weights
(server.strategy.decoded), driven with real Messages (no runtime)."""
from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from server.strategy import decoded, make_strategy
from shared_model.update_codec import SCALES, encode


@pytest.fixture
def update():
    """(start, trained): the global tensors sent and what a site trained them into."""
    rng = np.random.default_rng(0)
    # A 0-d tensor too (CLIP's temperature): its shape must survive the trip through Flower's Array.
    start = {"clip.w": rng.normal(size=(6, 4)).astype(np.float32), "clip.b": rng.normal(size=4).astype(np.float32),
             "clip.logit_scale": np.asarray(np.float32(2.6))}
    trained = {k: v + rng.normal(scale=1e-2, size=v.shape).astype(np.float32) for k, v in start.items()}
    return start, trained


def _reply(arrays: dict, scales: dict, *, request: Message | None = None) -> Message:
    """A site's train reply as the server receives it: arrays, the int8 scales (if any), metrics, its name."""
    request = request or Message(RecordDict({"config": ConfigRecord({})}), dst_node_id=11, message_type="train")
    records = {"arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()}),
               "metrics": MetricRecord({"num-examples": 5, "site-index": -1, "bytes-up": 1, "seconds": 0.1}),
               "site": ConfigRecord({"name": "hospital-a"})}
    if scales:
        records[SCALES] = ArrayRecord({k: Array(v) for k, v in scales.items()})
    return Message(RecordDict(records), reply_to=request)


def test_an_int8_reply_is_replaced_by_its_fp32_weights_in_place(update):
    start, trained = update
    reply = _reply(*encode(trained, start, "int8"))
    # Execute
    problem = decoded(reply, start, "int8")
    # Assert: fp32 weights within half an int8 step of the trained ones; the scales are consumed
    assert problem is None
    arrays = {k: v.numpy() for k, v in reply.content["arrays"].items()}
    assert arrays.keys() == trained.keys()
    for key, value in trained.items():
        assert arrays[key].dtype == np.float32 and arrays[key].shape == value.shape
        np.testing.assert_allclose(arrays[key], value, rtol=0, atol=np.abs(value - start[key]).max() / 254 + 1e-6)
    assert SCALES not in reply.content.array_records
    # What the rest of screening reads is kept
    assert reply.content["metrics"]["num-examples"] == 5 and reply.content["site"]["name"] == "hospital-a"


def test_an_fp16_reply_is_decoded_and_an_fp32_reply_under_fp32_is_left_alone(update):
    start, trained = update
    fp16 = _reply(*encode(trained, start, "fp16"))
    plain = _reply(trained, {})
    content = plain.content
    assert decoded(fp16, start, "fp16") is None and decoded(plain, start, "fp32") is None
    for key, value in trained.items():
        np.testing.assert_allclose(fp16.content["arrays"][key].numpy(), value, rtol=0, atol=1e-5)
    assert plain.content is content  # nothing to decode: the reply is not rebuilt


def test_fp32_arrays_in_an_int8_run_are_a_problem_naming_the_dtype(update):
    start, trained = update
    reply = _reply(trained, {})
    problem = decoded(reply, start, "int8")
    assert problem is not None and "wrong dtype float32" in problem and "updates are int8" in problem
    # The reply is left as it came, for the round log to say why it was rejected
    assert reply.content["arrays"]["clip.w"].numpy().dtype == np.float32


class _Grid:
    def get_node_ids(self):
        return [11]


def test_an_int8_round_averages_decoded_weights_and_rejects_an_undecodable_reply(update):
    start, trained = update
    strategy = make_strategy("fedavg", schedule="contrastive", site_names=[], total_rounds=1, update_dtype="int8",
                             fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    [request] = strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in start.items()}), ConfigRecord({}),
                                         _Grid())
    # Execute: an honest int8 reply is averaged as the weights it encodes
    arrays, _ = strategy.aggregate_train(1, [_reply(*encode(trained, start, "int8"), request=request)])
    # Assert
    assert arrays is not None and strategy.round_log[1]["sites"]["hospital-a"]["status"] == "ok"
    for key, value in trained.items():
        step = np.abs(value - start[key]).max() / 127  # int8's step: undecoded ints would be off by ~1e2
        np.testing.assert_allclose(arrays[key].numpy(), value, rtol=0, atol=step / 2 + 1e-6)
    # An fp32 reply in the same int8 round cannot be decoded: rejected with the update dtype named
    strategy.configure_train(1, ArrayRecord({k: Array(v) for k, v in start.items()}), ConfigRecord({}), _Grid())
    assert strategy.aggregate_train(1, [_reply(trained, {}, request=request)]) == (None, None)
    status = strategy.round_log[1]["sites"]["hospital-a"]["status"]
    assert status.startswith("rejected: update-dtype int8:") and "wrong dtype float32" in status
