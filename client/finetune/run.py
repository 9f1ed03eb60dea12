"""One fine-tuning run at one site: the findings classifier and report generation, from a fraction of its labels.

The starting model is scored first (zero-shot AUC, and reports through the bank of the sampled
reports); then a findings classifier is trained on a copy of its image tower
(``client.finetune.classifier``) and MultiMedLM on the sampled reports, text only, with the same
objective and epoch function as federated and pooled training (``shared_model.objectives.lm_epoch``).
Everything is scored on the site's test split.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from rich.console import Console

from client.data.dataset import text_batches
from client.data.evaldata import bank_texts, evaluation_inputs
from client.data.sources import load_records
from client.data.store_build import check_store, decode_with_progress
from client.errors import DataError
from client.finetune.classifier import (FindingsClassifier, classifier_scores, image_labels, save_classifier,
                                        train_classifier)
from client.finetune.config import FinetuneConfig
from client.finetune.schedule import warmup_cosine
from client.finetune.sampling import sample_summary, sampled_patients
from client.finetune.start import load_start
from shared_model.results import write_results
from shared_model.checkpoint import save_checkpoint
from shared_model.device import resolve_device
from shared_model.evaluate import auc_per_finding, evaluate_model, macro
from shared_model.findings import LANGUAGES
from shared_model.objectives import lm_epoch, make_optimizer
from shared_model.train_config import TrainConfig

MODEL, CLASSIFIER, CONFIG = "model.safetensors", "classifier.safetensors", "config.json"


def run_finetune(cfg: FinetuneConfig, console: Console | None = None) -> dict:
    """Fine-tune, score, and write ``cfg.out`` (model, classifier, config.json, results.json); returns results."""
    console = console or Console(quiet=True)
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    out = _out_dir(cfg)
    model, origin = load_start(cfg)
    store, workers = cfg.store()
    records, report = load_records(cfg.data, languages=LANGUAGES)
    examples = decode_with_progress([r for r in records if r.split in ("train", "test")], model.cfg.image_size,
                                    report, store=check_store(store), workers=workers, console=console)
    train, test = (examples.subset(lambda r, s=s: r.split == s) for s in ("train", "test"))
    data_report = report.summary(examples.records)
    if not train.records:
        raise DataError(cfg.data, "no usable training records to fine-tune on (see `m3fed data check`)")
    chosen = set(sampled_patients(train.records, cfg.label_fraction, cfg.seed))
    sample = train.subset(lambda r: r.patient_id in chosen)
    findings = _findings(cfg, train)
    inputs = evaluation_inputs(test, findings)
    if not len(inputs["images"]):
        raise DataError(cfg.data, "no test-split images to score the fine-tuned model on")
    sampled = sample_summary(train.records, sorted(chosen), cfg.label_fraction, cfg.seed)
    console.print(f"fine-tuning on {sampled['patients']} of {sampled['of_patients']} training patients "
                  f"({sampled['records']} records, {sampled['images']} images); {len(inputs['images'])} test images")
    model.to(device)
    bank = bank_texts(sample.records, cfg.bank_size, cfg.seed)
    reports = cfg.reports and bool(bank) and bool(inputs["references"])
    with console.status("scoring the starting model (zero-shot)"):
        zero_shot = evaluate_model(model, **inputs, bank_texts=bank, device=device, num_beams=cfg.num_beams,
                                   reports=reports)
    torch.manual_seed(cfg.seed)
    clf = FindingsClassifier.from_model(model, findings, device)
    with console.status(f"training the findings classifier ({cfg.tune})"):
        clf_run = train_classifier(clf, sample, tune=cfg.tune, epochs=cfg.epochs, min_steps=cfg.min_steps,
                                   batch_size=cfg.batch_size, lr=cfg.lr, tower_lr=cfg.tower_lr,
                                   weight_decay=cfg.weight_decay,
                                   seed=cfg.seed, device=device)
    per_label = auc_per_finding(classifier_scores(clf, inputs["images"], device), inputs["labels"])
    final = {"auc_macro": macro(per_label), "auc_per_label": per_label, "bleu": {}, "rougeL": {}, "examples": {}}
    lm_run = {"epochs": 0, "loss": None}
    if reports and cfg.lm_epochs:
        with console.status("fine-tuning report generation (text only)"):
            lm_run = _tune_reports(model, sample, cfg, device)
            tuned = evaluate_model(model, **inputs, bank_texts=bank, device=device, num_beams=cfg.num_beams)
        final.update(bleu=tuned["bleu"], rougeL=tuned["rougeL"], examples=tuned["examples"])
    elif reports:  # no report epochs: the start's reports are the fine-tuned model's
        final.update(bleu=zero_shot["bleu"], rougeL=zero_shot["rougeL"], examples=zero_shot["examples"])
    config = {**dataclasses.asdict(cfg), "model_config": model.cfg.to_dict(), "start": origin}
    (out / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_checkpoint(out / MODEL, model.cpu(), extra={"finetune_config": config})
    save_classifier(out / CLASSIFIER, clf, model, extra={"finetune_config": config})
    return write_and_read(out, config=config, final=final, data_report=data_report, extra={
        "findings": list(findings), "zero_shot": {k: zero_shot[k] for k in ("auc_macro", "auc_per_label", "bleu",
                                                                            "rougeL")},
        "sampled": sampled, "classifier": clf_run, "report_generation": lm_run, "start": origin,
        "seconds": {"total": time.perf_counter() - started}})


def _out_dir(cfg: FinetuneConfig) -> Path:
    """``--out``, created; refused when writing there would overwrite another run (the start's among them)."""
    out = Path(cfg.out)
    if (out / "results.json").is_file():
        try:
            mode = json.loads((out / "results.json").read_text(encoding="utf-8")).get("mode")
        except (OSError, ValueError, AttributeError):
            mode = "unreadable"
        if mode != "finetune":
            raise DataError(out, f"--out holds another run's results.json (mode {mode!r}); give a new directory")
    if not cfg.random_start and Path(cfg.model).resolve() in (out.resolve(), (out / MODEL).resolve()):
        raise DataError(out, "--out is where the starting model is; give a new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(out, f"--out: cannot create the run directory ({exc.strerror or exc})") from None
    return out


def _findings(cfg: FinetuneConfig, train) -> tuple[str, ...]:
    """The asked findings the site's training images hold both classes of (a head needs both to learn)."""
    _, targets = image_labels(train, cfg.findings)
    kept = tuple(name for k, name in enumerate(cfg.findings)
                 if (targets[:, k] == 1).any() and (targets[:, k] == 0).any())
    if not kept:
        raise DataError(cfg.data, f"no finding of {', '.join(cfg.findings)} has both positive and negative "
                                  "training images: nothing for a classifier to learn")
    return kept


def _tune_reports(model, sample, cfg: FinetuneConfig, device: torch.device) -> dict:
    """MultiMedLM on the sampled reports, with the federation's objective and epoch (CLIP frozen)."""
    train = TrainConfig(batch_size=max(cfg.batch_size, 2), lm_lr=cfg.lm_lr, lm_batch_size=cfg.lm_batch_size,
                        weight_decay=cfg.weight_decay)
    optimizer = make_optimizer(model.lm.parameters(), cfg.lm_lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.lm_epochs * math.ceil(len(sample.records) / cfg.lm_batch_size))
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # the condition noise draws from the global generator
    loss = math.nan
    for _ in range(cfg.lm_epochs):
        loss = lm_epoch(model, text_batches(sample, cfg.lm_batch_size, gen), optimizer, train, device,
                        scheduler=scheduler)
    return {"epochs": cfg.lm_epochs, "records": len(sample.records), "loss": loss}


def write_and_read(out: Path, *, config: dict, final: dict, data_report: dict, extra: dict) -> dict:
    path = write_results(out, mode="finetune", config=config, final=final, data_report=data_report, **extra)
    return json.loads(path.read_text(encoding="utf-8"))
