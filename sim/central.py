"""Pooled (centralised) training: the baseline every federated run is measured against."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from client.data.dataset import Examples, decode, pair_batches, text_batches
from client.data.store_build import check_store, decode_with_progress, store_line
from client.data.evaldata import bank_texts, evaluation_inputs, sampled_references
from client.data.sources import load_records
from client.errors import DataError
from server.model_card import write_model_card
from shared_model.results import write_results
from shared_model.checkpoint import save_checkpoint
from shared_model.config import get_preset
from shared_model.device import resolve_device
from shared_model.evaluate import evaluate_model
from shared_model.model import parameter_counts
from shared_model.objectives import contrastive_epoch, lm_epoch, make_optimizer, one_cycle
from shared_model.selection import Selector, epoch_stages, validation_score
from sim.baselines import copy_state
from sim.central_config import CentralConfig


def load_split_examples(data: str, image_size: int, languages: tuple[str, ...], *, store: Path | None = None,
                        workers: int = 1, console: Console | None = None, counts: dict | None = None
                        ) -> tuple[Examples, Examples, Examples, dict]:
    """train, validate, test, and the data report; images through the decoded-image store at ``store``
    (None: decoded in memory)."""
    records, report = load_records(data, languages=languages)
    examples = (decode(records, image_size, report) if store is None else
                decode_with_progress(records, image_size, report, store=store, workers=workers, console=console,
                                     counts=counts))
    train, validate, test = (examples.subset(lambda r, s=s: r.split == s) for s in ("train", "validate", "test"))
    return train, validate, test, report.summary(examples.records)


def run_central(cfg: CentralConfig, console: Console | None = None) -> dict:
    console = console or Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device, model_cfg = resolve_device(cfg.device), get_preset(cfg.preset)
    started = time.perf_counter()
    store, workers = cfg.store()
    decoding = {"store": str(store)}
    train, validate, test, data_report = load_split_examples(cfg.data, model_cfg.image_size, cfg.languages,
                                                             store=check_store(store), workers=workers,
                                                             console=console, counts=decoding)
    console.print(store_line(decoding))
    console.print(f"data: {len(train.records)} train / {len(validate.records)} validate / {len(test.records)} "
                  f"test records, {data_report['skipped']} skipped")
    if not train.records:
        raise DataError(cfg.data, "no usable training records (see `m3fed data check`)")
    if not test.records:
        raise DataError(cfg.data, "no usable test-split records to evaluate on")
    source = cfg.model_source()
    model = source.initial(seed=cfg.seed).to(device)
    model_cfg = model.cfg
    console.print(f"model {cfg.preset}: {parameter_counts(model)} on {device}")
    gen = torch.Generator().manual_seed(cfg.seed)
    t = cfg.train
    clip_opt = make_optimizer(model.clip.parameters(), t.lr, t.weight_decay)
    lm_opt = make_optimizer(model.lm.parameters(), t.lm_lr, t.weight_decay)
    pair_steps = math.ceil(int((train.image_index >= 0).sum()) / t.batch_size)
    clip_sched = one_cycle(clip_opt, cfg.contrastive_epochs * pair_steps)
    lm_batch = t.batch_for("report-generation")
    lm_sched = one_cycle(lm_opt, cfg.lm_epochs * math.ceil(len(train.records) / lm_batch))
    history = []
    bank = bank_texts(train.records, cfg.bank_size, cfg.seed)
    selector = _selector(cfg, validate, console)
    val_inputs = sampled_references(evaluation_inputs(validate, cfg.eval_labels), seed=cfg.seed)
    stages = {"contrastive": (clip_opt, clip_sched), "report-generation": (lm_opt, lm_sched)}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), console=console) as bar:
        for stage in selector.stages:
            task = bar.add_task(stage.objective, total=len(stage.steps), loss=float("nan"))
            opt, sched = stages[stage.objective]
            for epoch, step in enumerate(stage.steps, start=1):
                if stage.objective == "contrastive":
                    loss = contrastive_epoch(model, pair_batches(train, t.batch_size, gen), opt, t, device,
                                             scheduler=sched)
                else:
                    loss = lm_epoch(model, text_batches(train, lm_batch, gen), opt, t, device, scheduler=sched)
                val = (evaluate_model(model, **val_inputs, bank_texts=bank, device=device, languages=cfg.languages,
                                      num_beams=cfg.num_beams, reports=stage.metric == "bleu4")
                       if cfg.selection().on and len(val_inputs["images"]) else {})
                entry = selector.observe(step, val, snapshot=lambda: copy_state(model))
                history.append({"objective": stage.objective, "epoch": epoch, "loss": loss,
                                "validation": {"auc_macro": val.get("auc_macro"),
                                               "bleu4": validation_score(val, "bleu4"),
                                               "metric": stage.metric, "value": entry["value"], "best": entry["best"]}})
                bar.update(task, advance=1, loss=loss)
                if selector.stage_ends(step):
                    model.load_state_dict(selector.best_state(step))
                    break
    train_seconds = time.perf_counter() - started
    with console.status("evaluating the selected model on the test split"):
        final = evaluate_model(model, **evaluation_inputs(test, cfg.eval_labels), bank_texts=bank, device=device,
                               num_beams=cfg.num_beams, languages=cfg.languages)
    config = {**dataclasses.asdict(cfg), "model": model_cfg.to_dict()}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_checkpoint(out / "model.safetensors", model, extra={"run_config": config})
    if model.adapter:  # the adapters folded in: a plain model for inference, or the next run's --init
        save_checkpoint(out / "model-merged.safetensors", source.merged(model.cpu()), extra={"run_config": config})
    seconds = time.perf_counter() - started
    write_results(out, mode="central", config=config, final=final, data_report=data_report,
                  history=history, selected=_selected(selector), seconds={"train": train_seconds, "total": seconds},
                  image_store=decoding)
    write_model_card(out)
    return final


def _selector(cfg: CentralConfig, validate: Examples, console: Console) -> Selector:
    selection = cfg.selection()
    if selection.on and not validate.records:
        console.print("[yellow]no validate-split records: the last epoch of each stage is kept[/]")
    return Selector(epoch_stages(cfg.contrastive_epochs, cfg.lm_epochs, selection.metric), selection)


def _selected(selector: Selector) -> dict:
    """Which epoch of each stage the saved model is (epochs numbered within their stage)."""
    doc = selector.selected(unit="epoch")
    for stage in doc["stages"]:
        before = selector.stages[stage["stage"] - 1].steps[0] - 1
        stage["epoch"] -= before
        if "stopped_after" in stage:
            stage["stopped_after"] -= before
    last = doc["stages"][-1] if doc["stages"] else {}
    return {**doc, "epoch": last.get("epoch"), "objective": last.get("objective")}
