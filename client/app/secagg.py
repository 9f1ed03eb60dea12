"""The client half of the SecAgg+ seam (the server half is ``server/secagg.py``).

Flower 1.42 has SecAgg+ only for the legacy layout: ``secaggplus_mod`` drives four protocol
stages and, in the third, expects the wrapped app to answer with a ``FitRes`` (``fitres.*``
records). Everything about that layout lives here: the rest of the ClientApp stays on the Message
API, and when Flower moves SecAgg+ to it only this file and its server twin change.

What is masked is the site's *update* (trained − global) of the half its objective trained,
never the weights: SecAgg+ clips every value to ±``clipping_range`` before quantising it, so a
weight above the range would be silently changed. The site checks its scaled update against the
range and refuses with an error (the round goes on without it) rather than send a clipped value.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common.recorddict_compat import fitres_to_recorddict, recorddict_to_fitins

from shared_model.config import trained_keys

# Keys the server adds to the legacy FitIns config (see server/secagg.py).
KEYS, MAX_WEIGHT, CLIPPING_RANGE = "secagg-keys", "secagg-max-weight", "secagg-clipping-range"


class SecAggValueError(ValueError):
    """An update SecAgg+ would silently clip or overflow: the site sends nothing this round."""


def is_secure(msg: Message) -> bool:
    """A SecAgg+ protocol message (any stage), as opposed to a plain Message-API train message."""
    return RECORD_KEY_CONFIGS in msg.content.config_records


def secure_train(msg: Message, context: Context, train_content: Callable[[RecordDict], RecordDict]) -> Message:
    """Run one SecAgg+ stage; the third calls ``train_content`` for the site's update."""
    return secaggplus_mod(msg, context, lambda m, _ctx: _fit(m, train_content))


def _fit(msg: Message, train_content: Callable[[RecordDict], RecordDict]) -> Message:
    fitins = recorddict_to_fitins(msg.content, keep_input=True)
    config = dict(fitins.config)
    keys = json.loads(str(config.pop(KEYS)))
    max_weight, clipping = float(config.pop(MAX_WEIGHT)), float(config.pop(CLIPPING_RANGE))
    start = dict(zip(keys, parameters_to_ndarrays(fitins.parameters), strict=True))
    reply = train_content(RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in start.items()}),
                                      "config": ConfigRecord(config)}))
    metrics = dict(reply["metrics"])
    if "status" in reply:  # a refusal's reason travels in clear, like every FitRes metric
        metrics["status"] = str(reply["status"]["reason"])
    if "site" in reply:
        metrics["site-name"] = str(reply["site"]["name"])
    n = int(metrics["num-examples"])
    trained = {k: v.numpy() for k, v in reply["arrays"].items()}
    half = trained_keys(keys, str(config["objective"]))
    # 0-d values (CLIP's temperature) go as shape (1,): Flower's SecAgg+ arithmetic mishandles scalars.
    update = [np.atleast_1d(np.asarray(trained[k] - start[k], dtype=np.float64) if n else np.zeros(start[k].shape))
              for k in half]
    check_update(update, n, max_weight=max_weight, clipping_range=clipping)
    fitres = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(update), n, metrics)
    return Message(fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)


def check_update(update: list[np.ndarray], n: int, *, max_weight: float, clipping_range: float) -> None:
    """SecAgg+ masks (n / max_weight) · update after clipping it to ±clipping_range: refuse what it would change."""
    if n > max_weight:
        raise SecAggValueError(f"num-examples {n} exceeds secagg-max-weight {max_weight:g}: the weight would "
                               "overflow; set secagg-max-weight to at least the largest site's example count")
    largest = max((float(np.abs(u).max()) for u in update if u.size), default=0.0) * n / max_weight
    if largest > clipping_range:
        raise SecAggValueError(f"scaled update reaches {largest:.4g}, beyond secagg-clipping-range "
                               f"{clipping_range:g}: SecAgg+ would clip it; raise secagg-clipping-range")
