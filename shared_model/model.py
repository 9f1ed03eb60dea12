"""M3FM: MultiMedCLIP and MultiMedLM in one module, the unit sites exchange."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from shared_model.clip import MultiMedCLIP
from shared_model.config import ModelConfig
from shared_model.lm import MultiMedLM
from shared_model.tokenizer import SharedTokenizer, load_tokenizer


class M3FM(nn.Module):
    def __init__(self, cfg: ModelConfig, tokenizer: SharedTokenizer, *, vit_weights: str | Path | None = None
                 ) -> None:
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.clip = MultiMedCLIP(cfg, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                                 vit_weights=vit_weights)
        self.lm = MultiMedLM(cfg, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                             eos_id=tokenizer.eos_id)


def build_model(cfg: ModelConfig, *, tokenizer: SharedTokenizer | None = None,
                vit_weights: str | Path | None = None) -> M3FM:
    return M3FM(cfg, tokenizer or load_tokenizer(), vit_weights=vit_weights)


def parameter_counts(model: M3FM) -> dict[str, int]:
    return {"clip_image": sum(p.numel() for p in model.clip.visual.parameters()),
            "clip_text": sum(p.numel() for p in model.clip.text.parameters()),
            "lm": sum(p.numel() for p in model.lm.parameters()),
            "total": sum(p.numel() for p in model.parameters())}
