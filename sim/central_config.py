"""The pooled baseline's settings (``m3fed central``): importable without torch, so the CLI answers at once."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared_model.config import get_preset
from shared_model.findings import DEFAULT_EVAL_LABELS
from shared_model.selection import SelectionConfig
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
    text_model: str | None = None  # a local Hugging Face encoder directory: text tower and tokenizer
    adapter: str = ""  # "" or lora:R: train adapters and heads on the frozen start (shared_model.adapters)
    train: TrainConfig = TrainConfig()
    # Each stage (contrastive epochs, then report-generation epochs) keeps its best epoch on the
    # validate split; patience N: a stage stops after N epochs without a better score (shared_model.selection).
    select: str = "auto"
    patience: int = 0
    image_cache: str = ""  # the decoded-image store ("": $M3FED_HOME/decoded, shared with m3fed sim)
    workers: int = 0  # processes decoding new images (0: every core)

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if self.workers < 0:
            raise ValueError(f"--workers must be at least 1 (0: every core), got {self.workers}")
        if self.contrastive_epochs < 0 or self.lm_epochs < 0:
            raise ValueError("epochs must be >= 0")
        self.selection()

    def store(self) -> tuple[Path, int]:
        """The decoded-image store and how many processes fill it."""
        from client.data.store_build import default_store, default_workers

        return Path(self.image_cache) if self.image_cache else default_store(), self.workers or default_workers()

    def selection(self) -> SelectionConfig:
        return SelectionConfig(metric=self.select, patience=self.patience)

    def model_source(self):
        """Where the model comes from (``shared_model.checkpoint.ModelSource``), checked: CheckpointError says what is wrong."""
        from shared_model.checkpoint import ModelSource
        from shared_model.text_model import check_coverage

        source = ModelSource(preset=self.preset, text_model=self.text_model or "", vit_weights=self.vit_weights or "",
                             init=self.init or "", adapter=self.adapter)
        source.check()
        if self.text_model:
            check_coverage(source.tokenizer(), self.languages)
        return source
