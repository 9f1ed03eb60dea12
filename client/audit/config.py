"""``m3fed audit memorisation``'s settings: one frozen, validated config, importable without torch."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from privacy.canaries import SPACE
from shared_model.run_config import RunConfig

_RUN = RunConfig()


@dataclass(frozen=True, kw_only=True)
class AuditConfig:
    model: str  # a run directory or checkpoint (client.inference.model_files)
    data: str  # the site's dataset: its train split is trained on, its test split conditions generation
    out: str = ""  # "": <run dir>/memorisation (or memorisation-dp with a policy)
    canaries: int = 10  # inserted canaries; as many never-inserted ones are the control group
    repeats: int = 1  # training records per inserted canary (each its own patient and study)
    epochs: int = 4  # report-generation epochs over the site's training reports and the canaries
    alternatives: int = 1000  # R: secrets of the space each canary is ranked against
    generate: int = 100  # held-out conditions per language whose generated report is checked (0: none)
    dp: str = ""  # the site's privacy policy (YAML): train with its DP-SGD path and budget
    seed: int = 0
    device: str = "auto"
    # The sites' own report-generation settings (shared_model.run_config): what a site trains with.
    lm_lr: float = _RUN.lm_lr
    lm_batch_size: int = _RUN.lm_batch_size

    def __post_init__(self) -> None:
        for name, least in (("canaries", 1), ("repeats", 1), ("epochs", 1), ("generate", 0), ("lm_batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer of at least {least}, got {value!r}")
        if not 10 <= self.alternatives < SPACE:
            raise ValueError(f"--alternatives must be in [10, {SPACE - 1}] (secrets of the space to rank each "
                             f"canary against), got {self.alternatives}")
        if not self.lm_lr > 0:
            raise ValueError(f"--lm-lr must be > 0, got {self.lm_lr}")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")

    def out_dir(self) -> Path:
        """``--out``, or beside the model: ``<run dir>/memorisation`` (``memorisation-dp`` with ``--dp``)."""
        if self.out:
            return Path(self.out)
        model = Path(self.model)
        return (model if model.is_dir() else model.parent) / ("memorisation-dp" if self.dp else "memorisation")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
