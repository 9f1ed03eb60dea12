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

from client.dataset import decode  # noqa: E402
from client.sources import load_records  # noqa: E402
from server.run_state import load_round, save_round  # noqa: E402
from server.strategy import ObjectiveFedAvg  # noqa: E402
from shared_model.config import get_preset  # noqa: E402
from shared_model.device import resolve_device  # noqa: E402
from shared_model.evaluate import evaluate_model  # noqa: E402
from shared_model.findings import DEFAULT_EVAL_LABELS  # noqa: E402
from shared_model.model import build_model  # noqa: E402
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
    # The server needs the test images and only the texts of the training reports (memory bank).
    records, report = load_records(str(rc["data"]))
    test = decode([r for r in records if r.split == "test"], cfg.image_size, report)
    eval_inputs = evaluation_inputs(test, DEFAULT_EVAL_LABELS)
    bank = bank_texts([r for r in records if r.split == "train"], 2000, int(rc["seed"]))
    data_report = report.summary(test.records)
    state = load_round(run_dir, model) if bool(rc["resume"]) else None
    done = state["round"] if state else 0
    rounds: list[dict] = state["rounds"] if state else []
    initial: dict = state["initial"] if state else {}
    strategy = ObjectiveFedAvg(schedule=str(rc["schedule"]), site_names=sites, round_offset=done,
                               fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=int(rc["min-sites"]),
                               min_available_nodes=int(rc["min-sites"]))
    started = time.perf_counter()

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        global_round = server_round + done
        model.load_state_dict(arrays.to_torch_state_dict())
        model.to(device)
        final = evaluate_model(model, **eval_inputs, bank_texts=bank, device=device)
        if global_round == 0:
            initial.update(auc_macro=final["auc_macro"], bleu4={lang: b["bleu4"] for lang, b in final["bleu"].items()})
        elif server_round > 0:
            log = strategy.round_log.get(global_round, {})
            rounds.append({"round": global_round, "objective": log.get("objective"), "auc_macro": final["auc_macro"],
                           "bleu4": {lang: b["bleu4"] for lang, b in final["bleu"].items()},
                           "seconds": strategy.round_seconds(global_round), "sites": log.get("sites", {})})
            save_round(run_dir, model, server_round=global_round, rounds=rounds, initial=initial)
        evaluate.last = final
        return MetricRecord({"auc-macro": final["auc_macro"]})

    remaining = int(rc["num-server-rounds"]) - done
    if remaining > 0:
        strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=remaining,
                       timeout=float(rc["round-timeout"]), train_config=ConfigRecord({}), evaluate_fn=evaluate)
    else:
        evaluate(0, ArrayRecord(model.state_dict()))
    write_results(run_dir, mode="federated", config=dict(rc), final=evaluate.last, rounds=rounds,
                  data_report=data_report, seconds={"total": time.perf_counter() - started}, sites=sites, initial=initial)
