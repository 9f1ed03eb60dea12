"""``m3fed finetune``'s settings: one frozen, validated config, importable without torch (the CLI's defaults)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from shared_model.config import get_preset
from shared_model.findings import CHEXPERT_LABELS, DEFAULT_EVAL_LABELS

RANDOM = "random"  # --model random: weights drawn from --seed, the protocol's from-scratch comparison

# What trains beside the findings head (client.finetune.classifier):
#   head: a linear probe on the frozen tower;
#   top:  the head, the tower's last block, its final norm and the projection (the default: with a tenth
#         of a site's labels the whole tower overfits and forgets what the federation taught it, while a
#         frozen tower cannot move its features towards the site's findings at all);
#   all:  the whole image tower.
TUNES = ("head", "top", "all")


@dataclass(frozen=True)
class FinetuneConfig:
    model: str  # a run directory, an m3fed checkpoint, or "random"
    data: str  # the site's dataset: its train split is sampled, its test split scores
    out: str
    label_fraction: float = 1.0  # of the site's training patients (all records of a sampled patient)
    seed: int = 0  # which patients are sampled, the head's batches, and --model random's weights
    epochs: int = 10  # classifier epochs over the sampled images ...
    min_steps: int = 60  # ... but at least this many updates: a 10 % sample would otherwise get a tenth of them
    lm_epochs: int = 3  # report-generation epochs over the sampled reports (text only, as the project trains)
    tune: str = "top"
    findings: tuple[str, ...] = DEFAULT_EVAL_LABELS  # the head's findings (those the data has both classes of)
    batch_size: int = 32
    lr: float = 1e-3  # the head's
    tower_lr: float = 1e-3  # the image tower's trained part (--tune top / all); 1e-4 with a 1e-2 head measured no better
    lm_batch_size: int = 16
    lm_lr: float = 1e-3
    weight_decay: float = 0.05
    reports: bool = True  # False: the classifier only (no report fine-tuning, no generation)
    preset: str = "tiny"  # the architecture of --model random
    device: str = "auto"
    num_beams: int = 1
    bank_size: int = 2000  # reports of the sampled patients the decoder projects onto
    image_cache: str = ""  # the decoded-image store ("": $M3FED_HOME/decoded, shared with sim and central)
    workers: int = 0  # processes decoding new images (0: every core)

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("--model: give a run directory, a checkpoint (.safetensors) or 'random'")
        if not (isinstance(self.label_fraction, (int, float)) and math.isfinite(self.label_fraction)
                and 0.0 < self.label_fraction <= 1.0):
            raise ValueError(f"--label-fraction must be in (0, 1], got {self.label_fraction}")
        if self.epochs < 0 or self.lm_epochs < 0 or self.min_steps < 0:
            raise ValueError("--epochs, --lm-epochs and --min-steps must be >= 0")
        if self.tune not in TUNES:
            raise ValueError(f"--tune must be one of {', '.join(TUNES)}, got {self.tune!r}")
        unknown = [f for f in self.findings if f not in CHEXPERT_LABELS]
        if unknown or not self.findings:
            raise ValueError(f"--findings: {', '.join(unknown) or 'none given'}; CheXpert findings are "
                             f"{', '.join(CHEXPERT_LABELS)}")
        if self.batch_size < 1 or self.lm_batch_size < 1 or self.num_beams < 1 or self.bank_size < 1:
            raise ValueError("--batch-size, --lm-batch-size, --beams and the bank size must be at least 1")
        if min(self.lr, self.tower_lr, self.lm_lr) <= 0 or self.weight_decay < 0:
            raise ValueError("learning rates must be > 0 and weight decay >= 0")
        if self.workers < 0:
            raise ValueError(f"--workers must be at least 1 (0: every core), got {self.workers}")
        get_preset(self.preset)

    @property
    def random_start(self) -> bool:
        return self.model == RANDOM

    def store(self) -> tuple[Path, int]:
        """The decoded-image store and how many processes fill it."""
        from client.data.store_build import default_store, default_workers

        return Path(self.image_cache) if self.image_cache else default_store(), self.workers or default_workers()
