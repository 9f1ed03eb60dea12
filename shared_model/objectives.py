"""The two local objectives, one step and one epoch each, shared by pooled and federated training.

Contrastive (MultiMedCLIP): symmetric InfoNCE over image-report pairs. Reports with identical
text in a batch are all positives (template-like normal reports are common), so the loss does
not push apart pairs that say the same thing.
Report generation (MultiMedLM): text only. The condition is the frozen CLIP text embedding of
the report plus Gaussian noise (DeCap-style), which bridges the gap to the image embeddings the
decoder sees at inference.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F

from shared_model.device import autocast
from shared_model.model import M3FM
from shared_model.train_config import TrainConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


def contrastive_loss(model: M3FM, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
    tok, clip = model.tokenizer, model.clip
    ids, mask = tok.encode_text(texts, model.cfg.max_text_len)
    ids, mask = ids.to(images.device), mask.to(images.device)
    image_emb = clip.encode_image(images)
    text_emb = clip.encode_text(ids, mask)
    logits = clip.temperature_scale() * image_emb @ text_emb.T
    same_text = torch.tensor([[a == b for b in texts] for a in texts], device=images.device, dtype=torch.float32)
    targets = same_text / same_text.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T))


def lm_per_example_loss(model: M3FM, texts: list[str], languages: list[str], *, noise_std: float,
                        device: torch.device) -> torch.Tensor:
    tok = model.tokenizer
    ids, mask = tok.encode_text(texts, model.cfg.max_text_len)
    with torch.no_grad():  # the CLIP text encoder is frozen while the decoder learns
        condition = model.clip.encode_text(ids.to(device), mask.to(device))
    if noise_std > 0:
        condition = F.normalize(condition + noise_std * torch.randn_like(condition), dim=-1)
    targets, _ = tok.encode_target(texts, languages, model.cfg.max_report_len)
    return model.lm.per_example_loss(condition, targets.to(device))


def _step(loss: torch.Tensor, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
          grad_clip: float, scheduler: Scheduler | None) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


def contrastive_epoch(model: M3FM, batches: Iterable[tuple[torch.Tensor, list[str]]],
                      optimizer: torch.optim.Optimizer, cfg: TrainConfig, device: torch.device,
                      on_step: Callable[[float], None] | None = None, scheduler: Scheduler | None = None,
                      loss_fn: Callable[[M3FM, torch.Tensor, list[str]], torch.Tensor] = contrastive_loss) -> float:
    """One pass of contrastive updates; returns the mean loss.

    ``loss_fn`` swaps the batch loss (DP training uses one whose per-example terms are independent).
    """
    model.clip.train()
    params = [p for p in model.clip.parameters() if p.requires_grad]
    losses = []
    for images, texts in batches:
        if len(texts) < 2:
            continue
        with autocast(device):
            loss = loss_fn(model, images.to(device), texts)
        losses.append(_step(loss, params, optimizer, cfg.grad_clip, scheduler))
        if on_step:
            on_step(losses[-1])
    return sum(losses) / max(len(losses), 1)


def lm_epoch(model: M3FM, batches: Iterable[tuple[list[str], list[str]]], optimizer: torch.optim.Optimizer,
             cfg: TrainConfig, device: torch.device, on_step: Callable[[float], None] | None = None,
             scheduler: Scheduler | None = None) -> float:
    """One pass of text-only report-generation updates (CLIP frozen); returns the mean loss."""
    model.clip.eval()
    model.lm.train()
    params = [p for p in model.lm.parameters() if p.requires_grad]
    losses = []
    for texts, languages in batches:
        with autocast(device):
            loss = lm_per_example_loss(model, texts, languages, noise_std=cfg.lm_noise_std, device=device).mean()
        losses.append(_step(loss, params, optimizer, cfg.grad_clip, scheduler))
        if on_step:
            on_step(losses[-1])
    return sum(losses) / max(len(losses), 1)


def make_optimizer(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay)


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int) -> Scheduler:
    """10 % warm-up then cosine decay over the whole run, stepped once per update."""
    lr = optimizer.param_groups[0]["lr"]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(total_steps, 1), pct_start=0.1)


class ProgressLR:
    """The learning rate of one local update, read off a schedule that spans the whole run.

    A federated site builds a fresh optimiser every round, so a per-round schedule would warm up and
    decay again each round. Here round ``r`` of an objective's ``R`` rounds covers the fraction
    ``[(r-1)/R, r/R]`` of one curve (linear warm-up over the first 10 %, then cosine decay), so a
    site's rounds together follow one schedule over the run. Stepped once per update. A plain class,
    not a torch ``LRScheduler``: those re-wrap ``optimizer.step``, which fails on the function
    :func:`add_proximal_term` puts there (AttributeError, torch 2.14).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, progress: tuple[float, float], steps: int,
                 warmup: float = 0.1, floor: float = 0.02) -> None:
        start, end = progress
        if not 0.0 <= start < end <= 1.0 or steps < 1:
            raise ValueError(f"progress must satisfy 0 <= start < end <= 1 and steps >= 1, got {progress}, {steps}")
        self.optimizer, self.start, self.end, self.steps = optimizer, start, end, steps
        self.warmup, self.floor, self.done = warmup, floor, 0
        self.base = [group["lr"] for group in optimizer.param_groups]
        self._apply()

    def factor(self, t: float) -> float:
        if t < self.warmup:
            return max(t / self.warmup, self.floor)
        return max(0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (1 - self.warmup))), self.floor)

    def _apply(self) -> None:
        # The lr of the step about to be taken: the middle of its slice of [start, end].
        t = self.start + (self.end - self.start) * (min(self.done, self.steps - 1) + 0.5) / self.steps
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * self.factor(t)

    def step(self) -> None:
        self.done += 1
        self._apply()


def add_proximal_term(optimizer: torch.optim.Optimizer, mu: float) -> torch.optim.Optimizer:
    """FedProx (Li et al. 2020): each step also pulls the weights towards where the round started.

    Adds ``mu * (w - w_start)``, the gradient of ``mu/2 * ||w - w_start||^2``, to every gradient just
    before the optimiser's own step, so any loss or gradient transform (clipping, DP noise) composes.
    """
    if mu <= 0:
        return optimizer
    start = [[p.detach().clone() for p in group["params"]] for group in optimizer.param_groups]
    inner_step = optimizer.step

    def step(*args, **kwargs):
        with torch.no_grad():
            for group, anchors in zip(optimizer.param_groups, start):
                for p, anchor in zip(group["params"], anchors):
                    if p.grad is not None:
                        p.grad.add_(p - anchor, alpha=mu)
        return inner_step(*args, **kwargs)

    optimizer.step = step
    return optimizer
