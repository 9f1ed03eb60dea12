"""A site's local-training settings: one frozen, validated config, importable without torch."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64
    lr: float = 1e-3
    lm_lr: float = 1e-3
    weight_decay: float = 0.05
    lm_noise_std: float = 0.04
    grad_clip: float = 1.0
    lm_batch_size: int | None = None  # report-generation batches (None: batch_size)

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError("batch_size must be at least 2 (contrastive needs negatives)")
        if self.lm_batch_size is not None and self.lm_batch_size < 1:
            raise ValueError("lm_batch_size must be at least 1")
        if min(self.lr, self.lm_lr) <= 0 or self.lm_noise_std < 0 or self.grad_clip <= 0:
            raise ValueError("learning rates and grad_clip must be > 0, lm_noise_std >= 0")

    def batch_for(self, objective: str) -> int:
        return (self.lm_batch_size or self.batch_size) if objective == "report-generation" else self.batch_size
