"""The comparisons a federated run is judged against: pooled data, and each site alone.

Both replay the federation's own schedule (same rounds, objectives, local epochs, optimiser and
``client.app.site.local_update``) on other data, so the only difference is who sees which examples.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from client.app.site import local_update
from client.data.dataset import Examples, decode
from client.data.image_store import decode_stored
from client.data.sources import load_records
from client.data.sources.records import DataReport
from shared_model.checkpoint import ModelSource, save_checkpoint
from shared_model.config import ModelConfig
from shared_model.evaluate import auc_per_finding, macro
from shared_model.kept_state import InMemory
from shared_model.model import M3FM
from shared_model.objectives import TrainConfig
from shared_model.schedule import OBJECTIVES, local_epochs_for, objective_for, objective_progress
from shared_model.selection import SelectionConfig, Selector, schedule_stages
from sim.significance import paired_auc_difference


# The best single site's selected weights (adapters folded in), relative to the run directory.
BEST_SINGLE_SITE = "baselines/best-single-site.safetensors"


def site_manifests(run_dir: Path, sites: list[str]) -> dict[str, Path]:
    return {name: run_dir / "sites" / name / "manifest.jsonl" for name in sites}


def load_site_examples(manifests: list[Path], image_size: int, store: str = "") -> Examples:
    """The training examples of one or more sites, decoded together (the pooled data set); through the
    decoded-image store at ``store`` when given."""
    records, report = [], DataReport(source=", ".join(map(str, manifests)))
    for path in manifests:
        site_records, site_report = load_records(path)
        records.extend(r for r in site_records if r.split == "train")
        report.skipped.extend(site_report.skipped)
    return decode_stored(records, image_size, report, store=store) if store else decode(records, image_size, report)


def replay_schedule(model: M3FM, examples: Examples, *, rounds: int, schedule: str, local_epochs: int,
                    lm_local_epochs: int = 0, train: TrainConfig, seed: int, device: torch.device,
                    objectives: tuple[str, ...] = OBJECTIVES, keep_optimizer: bool = True,
                    on_round: Callable[[int, str, float], None] | None = None,
                    validate: Callable[[M3FM, str], dict] | None = None,
                    selection: SelectionConfig = SelectionConfig()) -> float:
    """Train ``model`` on ``examples`` round by round exactly as one federated site would; returns seconds.

    ``objectives`` skips the other objective's rounds (AUC depends on the contrastive rounds only).
    With ``validate`` (model, metric -> validation result) the rounds are selected as the
    federation's are (``shared_model.selection``): ``model`` ends as the selected one, and
    ``model.selection`` says which round that was.
    """
    started = time.perf_counter()
    memory = InMemory() if keep_optimizer else None
    stages = [s for s in schedule_stages(schedule, rounds, selection.metric)
              if s.objective in (*objectives, "alternate")]
    selector = Selector(stages, selection) if validate and stages else None
    for r in range(1, rounds + 1):
        objective = objective_for(r, schedule)
        if objective not in objectives or (selector and selector.skipped(r)):
            continue
        loss, _ = local_update(model, examples, objective, train=train, epochs=local_epochs_for(objective, local_epochs, lm_local_epochs),
                               seed=seed * 100_003 + r * 101, device=device,
                               progress=objective_progress(r, schedule, rounds), memory=memory)
        if on_round:
            on_round(r, objective, loss)
        if selector:
            selector.observe(r, validate(model, selector.metric_at(r)), snapshot=lambda: copy_state(model))
            if selector.stage_ends(r):
                model.load_state_dict(selector.best_state(r))
            if selector.run_over(r):
                break
    if selector and selector.final_state() is not None:  # e.g. a single site's last alternate round is not its own
        model.load_state_dict(selector.final_state())
    model.selection = selector.selected(unit="round") | {"validation": selector.history} if selector else None
    return time.perf_counter() - started


def copy_state(model: M3FM) -> dict:
    """A detached copy of the weights (a candidate for selection), on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def run_baselines(*, run_dir: Path, sites: list[dict], model_cfg: ModelConfig, evaluation, device: torch.device,
                  init_seed: int, source: ModelSource, on_event: Callable[..., None] | None = None,
                  federated: M3FM | None = None, selection: SelectionConfig = SelectionConfig(),
                  store: str = "", **schedule) -> dict:
    """Pooled (every site's data, both objectives) and each image site alone (contrastive rounds: AUC),
    each selected on the validate split by the federation's rule (``selection``).

    With the ``federated`` model (the federation's selected one): how sure its AUC difference to
    each is (``sim.significance``).
    """
    on_event = on_event or (lambda **_: None)
    manifests = site_manifests(run_dir, [s["name"] for s in sites])

    def train(label: str, examples: Examples, objectives: tuple[str, ...]) -> tuple[M3FM, float]:
        model = source.initial(seed=init_seed)  # the federation's initial weights (and adapters)
        seconds = replay_schedule(model, examples, device=device, objectives=objectives, **schedule,
                                  on_round=lambda r, obj, loss: on_event(model=label, round=r, objective=obj, loss=loss),
                                  validate=lambda m, metric: evaluation.validate(m, device, metric=metric),
                                  selection=selection)
        return model, seconds

    model, seconds = train("pooled", load_site_examples(list(manifests.values()), model_cfg.image_size, store),
                           OBJECTIVES)
    final = evaluation(model, device, reports=True)
    pooled = {"auc_macro": final["auc_macro"], "bleu": {k: v["bleu4"] for k, v in final["bleu"].items()},
              "seconds": seconds, **_selected(model)}
    scores = {"pooled": evaluation.finding_scores(model, device)}
    single, best_model = {}, None
    for site in sites:
        if site["text_only"]:
            continue  # no images: no zero-shot diagnosis to compare
        model, seconds = train(site["name"], load_site_examples([manifests[site["name"]]], model_cfg.image_size, store),
                               ("contrastive",))
        scores[site["name"]] = evaluation.finding_scores(model, device)
        single[site["name"]] = {"auc_macro": macro(auc_per_finding(scores[site["name"]], evaluation.inputs["labels"])),
                                "bleu": None, "seconds": seconds, **_selected(model)}
        if max(single, key=lambda name: single[name]["auc_macro"]) == site["name"]:
            best_model = model  # only the best so far is kept: one model in memory, whatever the site count
    best = max(single, key=lambda name: single[name]["auc_macro"]) if single else None
    result = {"pooled": pooled, "single_sites": single, "best_single_site": best}
    if best_model is not None:  # what `m3fed finetune --model` starts from in the label-efficiency comparison
        save_checkpoint(run_dir / BEST_SINGLE_SITE, source.merged(best_model.cpu()),
                        extra={"baseline": "best_single_site", "site": best})
        result["best_single_site_model"] = BEST_SINGLE_SITE
    if federated is not None:
        fed, labels = evaluation.finding_scores(federated, device), evaluation.inputs["labels"]
        result["auc_difference"] = {
            "method": "paired bootstrap over the test images (the training seed's spread is not included)",
            **{key: paired_auc_difference(fed, scores[name], labels)
               for key, name in (("pooled", "pooled"), ("best_single_site", best)) if name}}
    return result


def _selected(model: M3FM) -> dict:
    """Which round a baseline's model is (``replay_schedule``'s selection), for results.json."""
    return {"selected": model.selection} if getattr(model, "selection", None) else {}
