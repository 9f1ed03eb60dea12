"""What one site does in a round: its data, and one local update of the requested objective."""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from client.data.dataset import Examples, pair_batches, text_batches
from client.data.decoded_cache import decode_cached
from client.data.evaldata import bank_texts, evaluation_inputs, sampled_references
from client.data.sources import load_records, select_records
from shared_model.evaluate import evaluate_model
from shared_model.findings import DEFAULT_EVAL_LABELS
from shared_model.kept_state import OptimizerMemory, keep, restore
from shared_model.model import M3FM
from shared_model.objectives import (ProgressLR, TrainConfig, add_proximal_term, contrastive_epoch, lm_epoch,
                                    make_optimizer)
from shared_model.schedule import OBJECTIVES


@lru_cache(maxsize=8)
def site_examples(data_path: str, image_size: int, split: str = "train", cache_dir: str | None = None, *,
                  languages: tuple[str, ...] | None = None, modalities: tuple[str, ...] | None = None,
                  scrub: bool = True) -> Examples:
    """The site's examples of one split, decoded once per process and, with ``cache_dir``, once per
    state of the data (a deployed SuperNode starts a process per message: ``client.data.decoded_cache``).

    ``train`` rows are trained on; ``test`` rows only evaluate the global model at the site.
    ``scrub``: reports are scrubbed of identifiers first (``client.data.sources.scrubbing``).
    ``languages`` / ``modalities`` (tuples; None: all): what the site contributes, from its
    ``site.yaml`` (``client.data.sources.selection``: a study of an unselected modality is left out
    whole). The decoded-image store is keyed by image file, so every selection and split shares it.
    """
    records, report = load_records(data_path, scrub=scrub, scrub_cache=cache_dir)
    records, _ = select_records(records, languages=languages, modalities=modalities)
    return decode_cached([r for r in records if r.split == split], image_size, report,
                         cache_dir=cache_dir)


def example_count(examples: Examples, objective: str) -> int:
    if objective == "contrastive":
        return int((examples.image_index >= 0).sum())
    return len(examples.records)


def declaration(examples: Examples) -> dict:
    """What a site tells the server before its first round: what it can train, in which languages,
    and on how many training examples per objective.

    The server learns which objectives to send (a text-only site gets no contrastive rounds, so no
    model download it would not use), what to report per language, and the most ``num-examples``
    it will accept from the site in a round (``server.screening``): a site cannot claim more later
    to dominate the average. The counts are what every round's ``num-examples`` releases anyway;
    no record leaves the site.
    """
    has_image = examples.image_index >= 0
    counts = {o: example_count(examples, o) for o in OBJECTIVES}
    return {"languages": sorted({r.language for r in examples.records}),
            "modalities": sorted({r.modality for r, i in zip(examples.records, has_image.tolist()) if i}),
            "images": bool(has_image.any()),
            "objectives": [o for o in OBJECTIVES if counts[o] >= 2],
            **{f"examples-{o}": n for o, n in counts.items()}}


def local_update(model: M3FM, examples: Examples, objective: str, *, train: TrainConfig, epochs: int,
                 seed: int, device: torch.device, on_step=None, proximal_mu: float = 0.0,
                 progress: tuple[float, float] | None = None, memory: OptimizerMemory | None = None
                 ) -> tuple[float, int]:
    """Run ``epochs`` local epochs of one objective; returns (mean loss, examples used).

    A site without data for the objective (a text-only site in a contrastive round) trains
    nothing and reports 0 examples, so weighted averaging leaves its copy out. ``progress``: the
    slice of the run's learning-rate schedule this round covers (None: constant learning rate).
    ``memory``: where the site's optimiser state from its previous round is, and this round's goes.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    n = example_count(examples, objective)
    if n < 2:
        return float("nan"), 0
    gen = torch.Generator().manual_seed(seed)
    # The report objective's noise draws from the global RNG; simulation workers are reused
    # across sites and rounds, so seed it too or the same run gives different weights.
    torch.manual_seed(seed)
    contrastive = objective == "contrastive"
    module, lr = (model.clip, train.lr) if contrastive else (model.lm, train.lm_lr)
    batch = train.batch_for(objective)
    optimizer = make_optimizer(module.parameters(), lr, train.weight_decay)
    restore(optimizer, memory, objective)
    optimizer = add_proximal_term(optimizer, proximal_mu)
    scheduler = None if progress is None else ProgressLR(optimizer, progress, epochs * math.ceil(n / batch))
    loss = float("nan")
    for _ in range(epochs):
        if contrastive:
            loss = contrastive_epoch(model, pair_batches(examples, batch, gen), optimizer, train, device,
                                     on_step=on_step, scheduler=scheduler)
        else:
            loss = lm_epoch(model, text_batches(examples, batch, gen), optimizer, train, device,
                            on_step=on_step, scheduler=scheduler)
    keep(optimizer, memory, objective)
    return loss, n


def local_evaluation(model: M3FM, data_path: str, image_size: int, device: torch.device, *, seed: int,
                     cache_dir: str | None = None, languages: tuple[str, ...] | None = None,
                     modalities: tuple[str, ...] | None = None, split: str = "test", reports: bool = True,
                     scrub: bool = True) -> dict:
    """The global model on the site's own patients of ``split`` (test, or validate for model
    selection), in the site's language(s); ``reports=False``: AUC only (no BLEU-4 key).

    The memory bank comes from the site's own training reports: it is built here and never leaves.
    Evaluation and bank records are those the site contributes (``languages`` / ``modalities``).
    """
    selection = {"languages": languages, "modalities": modalities, "scrub": scrub}
    held_out = site_examples(data_path, image_size, split, cache_dir, **selection)
    inputs = evaluation_inputs(held_out, DEFAULT_EVAL_LABELS)
    if split == "validate":  # scored every round: reports from a fixed sample (AUC from every image)
        inputs = sampled_references(inputs, seed=seed)
    if not len(inputs["images"]) or not inputs["references"]:
        return {"num-examples": 0, "auc-macro": float("nan"), **({"bleu4": 0.0} if reports else {})}
    languages = tuple(sorted(inputs["references"]))
    bank = bank_texts(site_examples(data_path, image_size, "train", cache_dir, **selection).records, 2000, seed)
    final = evaluate_model(model, **inputs, bank_texts=bank or inputs["references"][languages[0]][1],
                           device=device, languages=languages, reports=reports)
    if not reports:
        return {"num-examples": len(inputs["images"]), "auc-macro": final["auc_macro"]}
    bleu = {lang: final["bleu"][lang]["bleu4"] for lang in languages}
    return {"num-examples": len(inputs["images"]), "auc-macro": final["auc_macro"],
            "bleu4": sum(bleu.values()) / len(bleu), **{f"bleu4-{lang}": b for lang, b in bleu.items()}}


class InjectedFailure(RuntimeError):
    """A site made to die mid-round on purpose (``m3fed sim --drop-sites``)."""


def failure_after(steps: int):
    """An ``on_step`` callback that kills the update after ``steps`` optimizer steps."""
    done = [0]

    def on_step(_loss: float) -> None:
        done[0] += 1
        if done[0] >= steps:
            raise InjectedFailure(f"injected failure: site died after {steps} local step(s) of the round")
    return on_step
