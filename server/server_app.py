"""The Flower ServerApp (Message API): FedAvg over both objectives, evaluation each round, results.

Evaluation here uses the official test split of the simulated dataset (run config ``data``):
in a simulation the researcher owns all data. Results go to ``<run-dir>/results.json``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from server.strategy import ObjectiveFedAvg  # noqa: E402
from shared_model.checkpoint import save_checkpoint  # noqa: E402
from shared_model.config import get_preset  # noqa: E402
from shared_model.device import resolve_device  # noqa: E402
from shared_model.evaluate import evaluate_model  # noqa: E402
from shared_model.findings import DEFAULT_EVAL_LABELS  # noqa: E402
from shared_model.model import build_model  # noqa: E402
from sim.central import load_split_examples  # noqa: E402
from sim.evaldata import bank_texts, evaluation_inputs  # noqa: E402
from sim.results import write_results  # noqa: E402

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    rc = context.run_config
    run_dir = Path(str(rc["run-dir"]))
    sites = json.loads((run_dir / "sites.json").read_text(encoding="utf-8"))["sites"]
    cfg, device = get_preset(str(rc["preset"])), resolve_device(str(rc.get("device", "auto")))
    torch.manual_seed(int(rc["seed"]))
    model = build_model(cfg)
    train, test, data_report = load_split_examples(str(rc["data"]), cfg.image_size, ("en", "zh"))
    eval_inputs = evaluation_inputs(test, DEFAULT_EVAL_LABELS)
    bank = bank_texts(train, 2000, int(rc["seed"]))
    strategy = ObjectiveFedAvg(schedule=str(rc["schedule"]), site_names=sites, fraction_train=1.0,
                               fraction_evaluate=0.0, min_train_nodes=int(rc["min-sites"]),
                               min_available_nodes=int(rc["min-sites"]))
    rounds: list[dict] = []
    initial: dict = {}
    started = time.perf_counter()

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        model.load_state_dict(arrays.to_torch_state_dict())
        model.to(device)
        final = evaluate_model(model, **eval_inputs, bank_texts=bank, device=device)
        if server_round == 0:
            initial.update(auc_macro=final["auc_macro"], bleu4={lang: b["bleu4"] for lang, b in final["bleu"].items()})
        else:
            log = strategy.round_log.get(server_round, {})
            rounds.append({"round": server_round, "objective": log.get("objective"), "auc_macro": final["auc_macro"],
                           "bleu4": {lang: b["bleu4"] for lang, b in final["bleu"].items()},
                           "seconds": strategy.round_seconds(server_round), "sites": log.get("sites", {})})
            save_checkpoint(run_dir / "model.safetensors", model, extra={"round": server_round})
        evaluate.last = final
        return MetricRecord({"auc-macro": final["auc_macro"]})

    strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=int(rc["num-server-rounds"]),
                   timeout=float(rc["round-timeout"]), train_config=ConfigRecord({}), evaluate_fn=evaluate)
    write_results(run_dir, mode="federated", config=dict(rc), final=evaluate.last, rounds=rounds,
                  data_report=data_report, seconds={"total": time.perf_counter() - started}, sites=sites, initial=initial)
