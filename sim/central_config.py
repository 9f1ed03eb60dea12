"""The pooled baseline's settings (``m3fed central``): importable without torch, so the CLI answers at once."""
from __future__ import annotations

from dataclasses import dataclass

from shared_model.config import get_preset
from shared_model.findings import DEFAULT_EVAL_LABELS
from shared_model.train_config import TrainConfig


@dataclass(frozen=True)
class CentralConfig:
    data: str
    out: str
    preset: str = "tiny"
    contrastive_epochs: int = 20
    lm_epochs: int = 5
    seed: int = 0
    device: str = "auto"
    num_beams: int = 1
    languages: tuple[str, ...] = ("en", "zh")
    eval_labels: tuple[str, ...] = DEFAULT_EVAL_LABELS
    bank_size: int = 2000
    init: str | None = None
    vit_weights: str | None = None
    train: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if self.contrastive_epochs < 0 or self.lm_epochs < 0:
            raise ValueError("epochs must be >= 0")
