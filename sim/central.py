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
from client.data.evaldata import bank_texts, evaluation_inputs
from client.data.sources import load_records
from client.errors import DataError
from server.results import write_results
from shared_model.checkpoint import save_checkpoint
from shared_model.config import get_preset
from shared_model.device import resolve_device
from shared_model.evaluate import evaluate_model
from shared_model.model import parameter_counts
from shared_model.objectives import contrastive_epoch, lm_epoch, make_optimizer, one_cycle
from sim.central_config import CentralConfig


def load_split_examples(data: str, image_size: int, languages: tuple[str, ...]
                        ) -> tuple[Examples, Examples, dict]:
    records, report = load_records(data, languages=languages)
    examples = decode(records, image_size, report)
    return (examples.subset(lambda r: r.split == "train"), examples.subset(lambda r: r.split == "test"),
            report.summary(examples.records))


def run_central(cfg: CentralConfig, console: Console | None = None) -> dict:
    console = console or Console()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    device, model_cfg = resolve_device(cfg.device), get_preset(cfg.preset)
    started = time.perf_counter()
    train, test, data_report = load_split_examples(cfg.data, model_cfg.image_size, cfg.languages)
    console.print(f"data: {len(train.records)} train / {len(test.records)} test records, "
                  f"{data_report['skipped']} skipped")
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
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("contrastive", total=cfg.contrastive_epochs, loss=float("nan"))
        for epoch in range(cfg.contrastive_epochs):
            loss = contrastive_epoch(model, pair_batches(train, t.batch_size, gen), clip_opt, t, device,
                                     scheduler=clip_sched)
            history.append({"objective": "contrastive", "epoch": epoch + 1, "loss": loss})
            bar.update(task, advance=1, loss=loss)
        task = bar.add_task("report generation", total=cfg.lm_epochs, loss=float("nan"))
        for epoch in range(cfg.lm_epochs):
            loss = lm_epoch(model, text_batches(train, lm_batch, gen), lm_opt, t, device, scheduler=lm_sched)
            history.append({"objective": "report-generation", "epoch": epoch + 1, "loss": loss})
            bar.update(task, advance=1, loss=loss)
    train_seconds = time.perf_counter() - started
    with console.status("evaluating on the test split"):
        final = evaluate_model(model, **evaluation_inputs(test, cfg.eval_labels),
                               bank_texts=bank_texts(train.records, cfg.bank_size, cfg.seed), device=device,
                               num_beams=cfg.num_beams, languages=cfg.languages)
    config = {**dataclasses.asdict(cfg), "model": model_cfg.to_dict()}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_checkpoint(out / "model.safetensors", model, extra={"run_config": config})
    if model.adapter:  # the adapters folded in: a plain model for inference, or the next run's --init
        save_checkpoint(out / "model-merged.safetensors", source.merged(model.cpu()), extra={"run_config": config})
    seconds = time.perf_counter() - started
    write_results(out, mode="central", config=config, final=final, data_report=data_report,
                  history=history, seconds={"train": train_seconds, "total": seconds})
    return final
