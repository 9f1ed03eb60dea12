"""The Flower ServerApp's run (Message API): a Flower strategy over both objectives, evaluation, results.

Results go to ``<run-dir>/results.json`` (``m3fed.results/1``), with the global weights and
strategy state after every round for ``--resume``; a deployment's ``report.md`` too
(``server.report``), its ``MODEL_CARD.md``, and the final model sent to every site
(``server.final_model``). The ServerApp object ``flwr run`` loads is ``sim.apps.serverapp``: it calls
``main`` here with the run's folder and data, after preparing the default synthetic federation
when ``flwr run .`` runs alone (no ``run-dir``).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from client.app.progress import report_progress  # noqa: E402
from server.aggregation import Aggregation  # noqa: E402
from server.declarations import SiteDeclarations  # noqa: E402
from server.evaluation import ServerEvaluation, federated_metrics  # noqa: E402
from server.grid import PromptGrid  # noqa: E402
from server.receipts import ReceiptStore  # noqa: E402
from shared_model.results import update_results, write_results  # noqa: E402
from server.model_selection import ServerSelection  # noqa: E402
from server.run_state import (MERGED, WEIGHTS, load_round, restore_strategy, save_round, save_weights,  # noqa: E402
                              strategy_arrays)
from server.screening import ScreeningConfig  # noqa: E402
from server.secagg import SecAggConfig, SecureGrid  # noqa: E402
from server.site_dp import WEIGHT_KEY, SiteDPConfig, SiteLevelDP  # noqa: E402
from server.strategy import make_strategy  # noqa: E402
from shared_model.checkpoint import ModelSource, save_checkpoint  # noqa: E402
from shared_model.device import server_device  # noqa: E402
from shared_model.run_config import RunConfig  # noqa: E402
from shared_model.selection import SelectionConfig  # noqa: E402


def _metrics(final: dict) -> dict:
    return {"auc_macro": final["auc_macro"], "bleu4": {lang: b["bleu4"] for lang, b in final["bleu"].items()}}


def strategy_options(run: RunConfig) -> dict:
    if run.strategy == "fedprox":
        return {"proximal_mu": run.proximal_mu}
    if run.strategy == "fedadam":  # eta_l is informational in Flower; the sites' own lr is lr / lm-lr
        return {"eta": run.server_lr, "eta_l": run.lr}
    return {}


def trust_settings(run: RunConfig) -> tuple[Aggregation, ScreeningConfig | None, SiteDPConfig]:
    """Aggregation, screening and site-level DP from the run config, refused together before any round
    (``m3fed sim`` checks the same in ``SimConfig``; ``m3fed run`` meets them here)."""
    site_dp = SiteDPConfig.from_run(run)
    site_dp.check_compatible(strategy=run.strategy, secagg=run.secagg)
    aggregation = Aggregation.parse(run.aggregation)
    aggregation.check(strategy=run.strategy, secagg=run.secagg, site_dp=site_dp.on, sites=run.min_sites)
    # Under SecAgg+ each reply carries the unmasked sum: there is no single update to screen.
    return aggregation, None if run.secagg else ScreeningConfig.from_run(run), site_dp


def main(grid: Grid, context: Context, *, run_dir: Path, data: str) -> None:
    """One run: ``run_dir`` holds its results (and, in a simulation, ``sites.json``); ``data`` is the
    server's evaluation data ("": none, a deployment)."""
    run = RunConfig.from_run_config(context.run_config)
    aggregation, screening, site_dp = trust_settings(run)
    # A deployment names no server-side data: the server holds none, the sites evaluate (server/remote.py).
    deployed = not data
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = _log_to(run_dir / "run.log")  # the round log travels with the results (m3fed run --fetch)
    sites = [] if deployed else json.loads((run_dir / "sites.json").read_text(encoding="utf-8"))["sites"]
    grid = PromptGrid(grid)  # replies as they arrive, not on Flower's 3-second poll
    # The one seam where SecAgg+ (legacy-only in flwr 1.42) enters: the strategy sees a Grid as before.
    secure = SecureGrid(grid, context, SecAggConfig.from_run(run), run_dir=run_dir) if run.secagg else None
    grid = secure or grid
    device = server_device(run.device)
    source = ModelSource.from_run(run)
    model = source.initial(seed=run.seed)
    cfg = model.cfg
    evaluation = None if deployed else ServerEvaluation(data, cfg.image_size, seed=run.seed, run_dir=run_dir,
                                                        sites=sites, max_records=run.eval_max_records,
                                                        store=run.image_store)
    state = load_round(run_dir, model) if run.resume else None
    done = state["round"] if state else 0
    rounds: list[dict] = state["rounds"] if state else []
    initial: dict = state["initial"] if state else {}
    total = run.num_server_rounds
    progress = run.progress_file
    strategy = make_strategy(run.strategy, options=strategy_options(run),
                             aggregation=aggregation, screening=screening,
                             schedule=run.schedule, site_names=sites, round_offset=done,
                             min_live_sites=run.min_live_sites, total_rounds=total,
                             client_eval_every=run.client_eval_every,
                             declarations=SiteDeclarations(timeout=run.round_timeout),
                             fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=run.min_sites,
                             min_evaluate_nodes=run.min_sites, min_available_nodes=run.min_sites,
                             update_dtype=run.update_dtype,
                             **({"weighted_by_key": WEIGHT_KEY} if site_dp.on else {}))
    strategy.receipts = ReceiptStore(run_dir / "receipts")  # each DP site's ledger head, kept across --resume
    selection = ServerSelection(SelectionConfig(metric=run.select, patience=run.patience), schedule=run.schedule,
                                rounds=total, run_dir=run_dir, evaluation=evaluation, device=device, state=state,
                                model=model)
    strategy.skip_round = selection.skip_reason
    if deployed and selection.cfg.on:  # the sites score their own validate patients every round
        strategy.validate_rounds = selection.validate_metric
    if state:
        restore_strategy(strategy, state["strategy_arrays"])
    if site_dp.on:  # a resumed run has already spent its earlier rounds
        strategy = SiteLevelDP(strategy, site_dp, released=sum(1 for r in rounds if r.get("site_dp")))
    started = time.perf_counter()

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        global_round = server_round + done
        log = strategy.round_log.get(global_round, {})
        if server_round > 0 and log.get("skipped"):  # its stage stopped early: nothing trained, nothing to score
            rounds.append({"round": global_round, "objective": log.get("objective"), "auc_macro": None,
                           "skipped": log["skipped"], "sites": {}})
            save_round(run_dir, model, server_round=global_round, rounds=rounds, initial=initial,
                       strategy_arrays=strategy_arrays(strategy), selection=selection.to_json())
            return MetricRecord({})
        model.load_state_dict(arrays.to_torch_state_dict())
        model.to(device)
        # Test AUC every round, for the plot only: the model is selected on validate (server.model_selection).
        result = (evaluation(model, device, reports=False) if evaluation
                  else federated_metrics(strategy.site_eval.get(global_round, {})))
        if server_round == 0 and not state:
            initial.update(_metrics(result))
        elif server_round > 0:
            validation = selection.after_round(global_round, model, arrays, strategy.site_eval.get(global_round, {}))
            rounds.append({"round": global_round, "objective": log.get("objective"), **_metrics(result),
                           "validation": validation,
                           "seconds": log.get("seconds"), "sites": log.get("sites", {}),
                           **({"site_eval": strategy.site_eval[global_round]}
                              if global_round in strategy.site_eval else {}),
                           **({"secagg": secure.rounds[global_round]} if secure and global_round in secure.rounds else {}),
                           **({"site_dp": strategy.rounds[global_round]} if site_dp.on
                              and global_round in strategy.rounds else {}),
                           **({"aggregation": log["aggregation"]} if log.get("aggregation") else {}),
                           **({"stopped": log["stopped"]} if log.get("stopped") else {})})
            save_round(run_dir, model, server_round=global_round, rounds=rounds, initial=initial,
                       strategy_arrays=strategy_arrays(strategy), selection=selection.to_json())
            report_progress(progress, event="round", **rounds[-1])
            logging.getLogger("flwr").info(round_line(rounds[-1]))
            if log.get("stopped"):
                raise StopRun(log["stopped"])
            if selection.run_over(global_round) and global_round < total:
                raise StopRun(validation.get("stopped", "early stopping"), early=True)
        return MetricRecord({} if result["auc_macro"] is None else {"auc-macro": result["auc_macro"]})

    stopped = early = None
    try:
        if total - done > 0:
            strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=total - done,
                           timeout=run.round_timeout, train_config=ConfigRecord({}),
                           evaluate_config=ConfigRecord({}), evaluate_fn=evaluate)
        else:
            evaluate(0, ArrayRecord(model.state_dict()))
    except StopRun as exc:
        stopped, early = (None, str(exc)) if exc.early else (str(exc), None)
    chosen = selection.summary()
    final = _selected_test(model, selection, evaluation=evaluation, device=device, strategy=strategy, grid=grid,
                           chosen=chosen, done=done, last_round=rounds[-1]["round"] if rounds else 0,
                           stopped=bool(stopped), timeout=run.round_timeout) or dict(NOT_EVALUATED)
    save_weights(run_dir / WEIGHTS, model.cpu(), server_round=chosen.get("round") or done, selected=chosen["metric"])
    if model.adapter:  # base + adapters is what the run keeps; inference takes them folded in
        save_checkpoint(run_dir / MERGED, source.merged(model.cpu()), extra={"merged_from": str(model.adapter)})
    write_results(run_dir, mode="federated", config=run.to_run_config(), final=final, rounds=rounds,
                  data_report=evaluation.data_report if evaluation else {},
                  seconds={"total": time.perf_counter() - started, "declarations": strategy.declarations.seconds},
                  sites=sites or sorted(set(strategy.node_names.values())), initial=initial,
                  declarations=strategy.declarations.by_site(), selected=chosen,
                  **({"privacy": strategy.privacy_statements} if strategy.privacy_statements else {}),
                  **({"stopped": stopped} if stopped else {}), **({"early_stopped": early} if early else {}))
    if deployed:  # a simulation writes its report and model card after the baselines (sim.simulate)
        from server.report import write_report

        _deliver(grid, strategy, run_dir=run_dir, timeout=run.round_timeout)
        write_report(run_dir)
    logging.getLogger("flwr").removeHandler(log_file)
    log_file.close()


def _selected_test(model, selection: ServerSelection, *, evaluation, device, strategy, grid, chosen: dict, done: int,
                   last_round: int, stopped: bool, timeout: float) -> dict | None:
    """The selected model (loaded into ``model``) on the test split: by the server in a simulation,
    by the sites on their own test patients in a deployment (the last round's answers when the last
    round is the one selected; none when the run stopped for want of sites)."""
    selected = selection.selected_arrays()
    if selected is not None:
        model.load_state_dict(selected.to_torch_state_dict())
    model.to(device)
    if evaluation is not None:
        return evaluation(model, device, reports=True)
    step = chosen.get("round")
    if step is None:
        return None
    if step == last_round and step in strategy.site_eval:
        return {**federated_metrics(strategy.site_eval[step]), "site_eval": strategy.site_eval[step]}
    if stopped:
        return None
    per_site = strategy.evaluate_once(grid, ArrayRecord(model.state_dict()), server_round=step - done,
                                      timeout=timeout)
    return {**federated_metrics(per_site), "site_eval": per_site}


def _deliver(grid, strategy, *, run_dir: Path, timeout: float) -> None:
    """The final model and the model card to every site (``server.final_model``); a failure to deliver
    is recorded in results.json and the log, never the loss of a finished run."""
    from server.final_model import deliver_final_model
    from server.model_card import write_model_card

    try:
        sites = json.loads((run_dir / "results.json").read_text(encoding="utf-8")).get("sites") or []
        done = deliver_final_model(grid, strategy, run_dir=run_dir, sites=sites, timeout=timeout)
        logging.getLogger("flwr").info("m3fed final model: " + "; ".join(
            f"{name} {s.get('model')}" for name, s in done["sites"].items()))
    except Exception as exc:  # noqa: BLE001 - the run is finished and written; only the delivery failed
        logging.getLogger("flwr").warning(f"m3fed final model not delivered: {type(exc).__name__}: {exc}")
        update_results(run_dir, final_model={"status": f"delivery failed: {type(exc).__name__}: {exc}"[:300]})
        write_model_card(run_dir)


NOT_EVALUATED = {"auc_macro": None, "bleu": {}, "evaluated_by": "not evaluated: the run stopped before a site could"}


def _log_to(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("flwr").addHandler(handler)
    return handler


def round_line(entry: dict) -> str:
    """One line per round for the run's log: objective, AUC, each site's status and examples."""
    auc = entry.get("auc_macro")
    sites = "; ".join(f"{name} {s.get('status')} ({s.get('examples') or 0} examples"
                      + (f", ε {s['epsilon']:.3f}" if isinstance(s.get("epsilon"), (int, float)) else "") + ")"
                      for name, s in sorted(entry.get("sites", {}).items()))
    return (f"m3fed round {entry['round']} ({entry.get('objective')}): macro AUC "
            f"{'—' if auc is None else f'{auc:.3f}'}; {sites or 'no site replied'}")


class StopRun(Exception):
    """Too few live sites (the run ends cleanly with the last good model), or ``early``: the
    last stage stopped improving on validate (``shared_model.selection``)."""

    def __init__(self, reason: str, *, early: bool = False) -> None:
        super().__init__(reason)
        self.early = early
