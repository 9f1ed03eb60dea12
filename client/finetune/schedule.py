"""The learning-rate schedule of a fine-tuning run: 10 % linear warm-up, then cosine decay to zero.

``shared_model.objectives.one_cycle`` is torch's OneCycleLR, which divides by zero when a run has
exactly 10 updates (its warm-up phase then ends at step 0): a 10 % sample of a small site hits it.
A LambdaLR has no such edge, and scales every parameter group from its own learning rate.
"""
from __future__ import annotations

import math

import torch


def warmup_cosine(optimizer: torch.optim.Optimizer, steps: int, warmup: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per update, ``steps`` updates in all."""
    warm = max(1, round(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, steps - warm) / max(steps - warm, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
