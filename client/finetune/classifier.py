"""A findings classifier on the image tower: a multi-label head on the image embedding, started at zero-shot.

The head's weights start as the zero-shot prompt directions (each finding's positive minus negative
prompt embedding, averaged over the prompt languages, times the model's temperature), so before any
update its scores rank images exactly as zero-shot diagnosis does, and fine-tuning starts from what
the federation learnt rather than from a random head that a handful of labels must first undo
(the zero-shot head initialisation of LP-FT / WiSE-FT). The tower is a copy: the model's own image
tower stays aligned with its text tower, which zero-shot diagnosis and report generation need.
"""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from client.data.dataset import Examples
from client.finetune.schedule import warmup_cosine
from shared_model.clip import MultiMedCLIP
from shared_model.device import autocast
from shared_model.errors import CheckpointError
from shared_model.evaluate import PROMPT_LANGUAGES, embed_texts
from shared_model.findings import prompt_pair
from shared_model.model import M3FM

FORMAT = "m3fed.classifier/1"


class FindingsClassifier(nn.Module):
    def __init__(self, visual: nn.Module, image_proj: nn.Linear, findings: tuple[str, ...]) -> None:
        super().__init__()
        self.findings = tuple(findings)
        self.visual, self.image_proj = visual, image_proj
        self.head = nn.Linear(image_proj.out_features, len(findings))

    @classmethod
    @torch.no_grad()
    def from_model(cls, model: M3FM, findings: tuple[str, ...], device: torch.device) -> "FindingsClassifier":
        """A copy of ``model``'s image tower with a head that scores as zero-shot diagnosis does."""
        clf = cls(copy.deepcopy(model.clip.visual), copy.deepcopy(model.clip.image_proj), findings)
        directions = []
        for name in findings:
            by_lang = [embed_texts(model, list(prompt_pair(name, lang)), device) for lang in PROMPT_LANGUAGES]
            directions.append(torch.stack([pos - neg for pos, neg in by_lang]).mean(0))
        clf.head.weight.copy_(float(model.clip.temperature_scale()) * torch.stack(directions).cpu())
        clf.head.bias.zero_()
        return clf

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> (B, findings) logits."""
        # MultiMedCLIP's own encoder (it reads only .visual and .image_proj), so the preprocessing never drifts.
        return self.head(MultiMedCLIP.encode_image(self, images))

    def trainable(self, tune: str) -> list[nn.Module]:
        """The modules that train under ``tune`` (client.finetune.config.TUNES); the rest stay frozen."""
        if tune == "all":
            return [self]
        top = [self.visual.blocks[-1], self.visual.norm, self.visual.fc_norm, self.image_proj]
        return [self.head] + (top if tune == "top" else [])


def image_labels(examples: Examples, findings: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct images (rows of ``examples.images``) and their targets: 1 positive; 0 or blank (not
    mentioned) negative; -1 (uncertain) left out of the loss, as zero-shot AUC leaves it out."""
    rows, targets, seen = [], [], set()
    for record, row in zip(examples.records, examples.image_index.tolist()):
        if row < 0 or row in seen:
            continue
        seen.add(row)
        rows.append(row)
        values = [record.labels.get(name, math.nan) for name in findings]
        targets.append([-1.0 if v == -1 else float(v == 1) for v in values])
    return torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.float32).reshape(-1, len(findings))


def train_classifier(clf: FindingsClassifier, examples: Examples, *, tune: str, epochs: int, min_steps: int,
                     batch_size: int, lr: float, tower_lr: float, weight_decay: float, seed: int,
                     device: torch.device) -> dict:
    """``epochs`` passes over the sampled images (at least ``min_steps`` updates); returns what was done.
    The head learns at ``lr``, the tower's trained part at ``tower_lr``."""
    rows, targets = image_labels(examples, clf.findings)
    for p in clf.parameters():
        p.requires_grad_(False)
    modules = clf.trainable(tune)
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    head = set(map(id, clf.head.parameters()))
    tower = [p for p in params if id(p) not in head]
    per_epoch = math.ceil(len(rows) / batch_size)
    steps = 0 if not len(rows) else max(epochs * per_epoch, min_steps if epochs else 0)
    summary = {"tune": tune, "images": len(rows), "steps": steps, "trainable": sum(p.numel() for p in params),
               "loss": None}
    if not steps:
        return summary
    optimizer = torch.optim.AdamW([{"params": list(clf.head.parameters()), "lr": lr},
                                   *([{"params": tower, "lr": tower_lr}] if tower else [])], weight_decay=weight_decay)
    scheduler = warmup_cosine(optimizer, steps)
    gen = torch.Generator().manual_seed(seed)
    clf.to(device).eval()  # frozen parts keep their inference behaviour (dropout off)
    for m in modules:
        m.train()
    losses, done = [], 0
    while done < steps:
        for chunk in torch.randperm(len(rows), generator=gen).split(batch_size):
            y = targets[chunk].to(device)
            with autocast(device):
                logits = clf(examples.image_float(rows[chunk]).to(device)).float()
            known = y >= 0
            loss = F.binary_cross_entropy_with_logits(logits[known], y[known]) if known.any() else logits.sum() * 0
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            done += 1
            if done == steps:
                break
    clf.eval()
    summary["loss"] = float(np.mean(losses[-per_epoch:]))
    return summary


@torch.no_grad()
def classifier_scores(clf: FindingsClassifier, images: torch.Tensor, device: torch.device,
                      batch_size: int = 128) -> dict[str, np.ndarray]:
    """uint8 (N, 1, S, S) images -> finding -> each image's logit (what its AUC is computed from)."""
    clf.to(device).eval()
    out = [clf(images[i:i + batch_size].to(device).float() / 255.0).float().cpu()
           for i in range(0, len(images), batch_size)]
    logits = torch.cat(out) if out else torch.zeros(0, len(clf.findings))
    return {name: logits[:, k].numpy() for k, name in enumerate(clf.findings)}


def save_classifier(path, clf: FindingsClassifier, model: M3FM, *, extra: dict | None = None) -> None:
    """The tower copy and head, with the model config and findings in the header."""
    meta = {"format": FORMAT, "findings": list(clf.findings), "model_config": model.cfg.to_dict(), **(extra or {})}
    save_model(clf.cpu(), str(path), metadata={"m3fed": json.dumps(meta)})


def load_classifier(path, model: M3FM) -> FindingsClassifier:
    """A saved classifier, built on the architecture of ``model`` (any model of the same config)."""
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("m3fed", "{}"))
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an m3fed findings classifier")
    if meta["model_config"] != model.cfg.to_dict():
        raise CheckpointError(f"{path}: made for another model config")
    clf = FindingsClassifier(copy.deepcopy(model.clip.visual), copy.deepcopy(model.clip.image_proj),
                             tuple(meta["findings"]))
    load_model(clf, str(path))
    return clf
