"""The Flower ClientApp (Message API): a thin shell around ``client.site`` and ``shared_model``.

Where a site's data is: ``node_config["data-path"]`` on a real SuperNode; in a simulation the
virtual node's ``partition-id`` picks ``<run-dir>/sites/<name>/manifest.jsonl``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from client.site import failure_after, local_update, site_examples  # noqa: E402  (offline flag first)
from shared_model.config import get_preset  # noqa: E402
from shared_model.device import resolve_device  # noqa: E402
from shared_model.model import build_model  # noqa: E402
from shared_model.objectives import TrainConfig  # noqa: E402

app = ClientApp()


def data_path_of(context: Context) -> str:
    """Where this node's data is."""
    if "data-path" in context.node_config:
        return str(context.node_config["data-path"])
    run_dir = Path(str(context.run_config["run-dir"]))
    names = json.loads((run_dir / "sites.json").read_text(encoding="utf-8"))["sites"]
    name = names[int(context.node_config["partition-id"])]
    return str(run_dir / "sites" / name / "manifest.jsonl")


@app.train()
def train(msg: Message, context: Context) -> Message:
    """One local update; a failure becomes a short error reply that names the site."""
    index = int(context.node_config.get("partition-id", -1))
    try:
        return _train(msg, context, index)
    except Exception as exc:  # the server reports it as this site's round status and goes on
        reason = f"[site {index}] {type(exc).__name__}: {exc}"
        return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=msg)


def _train(msg: Message, context: Context, index: int) -> Message:
    rc, config = context.run_config, msg.content["config"]
    data_path = data_path_of(context)
    cfg = get_preset(str(rc["preset"]))
    device = resolve_device(str(rc.get("device", "auto")))
    examples = site_examples(data_path, cfg.image_size)
    model = build_model(cfg)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    model.to(device)
    objective = str(config["objective"])
    train_cfg = TrainConfig(batch_size=int(rc["batch-size"]), lr=float(rc["lr"]), lm_lr=float(rc["lm-lr"]))
    # Seeded by site, not by node id (random per run), so the same seed gives the same run.
    seed = int(rc["seed"]) * 100_003 + int(config["global-round"]) * 101 + (index if index >= 0 else context.node_id % 97)
    dropped = {int(i) for i in str(rc.get("drop-sites", "")).split(",") if i.strip()}
    dies = index in dropped and int(config["global-round"]) >= int(rc.get("drop-round", 1))
    loss, n = local_update(model, examples, objective, train=train_cfg, epochs=int(rc["local-epochs"]),
                           seed=seed, device=device, on_step=failure_after(1) if dies else None)
    arrays = ArrayRecord(model.cpu().state_dict())
    metrics = MetricRecord({"num-examples": n, "loss": loss if n else 0.0,
                            "bytes-up": arrays.count_bytes(), "site-index": index})
    return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)
