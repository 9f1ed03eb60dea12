"""M3FM: MultiMedCLIP and MultiMedLM in one module, the unit sites exchange."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from shared_model.adapters import AdapterSpec, add_adapters
from shared_model.clip import MultiMedCLIP
from shared_model.config import ModelConfig
from shared_model.lm import MultiMedLM
from shared_model.tokenizer import DEFAULT_TOKENIZER, SharedTokenizer, load_tokenizer


class M3FM(nn.Module):
    def __init__(self, cfg: ModelConfig, tokenizer: SharedTokenizer, *, vit_weights: str | Path | None = None,
                 text_model: str | Path | None = None, pretrained_text: bool = True) -> None:
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.text_model = str(text_model) if text_model else ""  # recorded in checkpoints: where the tokenizer is
        self.adapter: AdapterSpec | None = None  # set by shared_model.adapters.add_adapters
        self.clip = MultiMedCLIP(cfg, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                                 vit_weights=vit_weights, text_model=text_model, pretrained_text=pretrained_text)
        self.lm = MultiMedLM(cfg, vocab_size=tokenizer.vocab_size, pad_id=tokenizer.pad_id,
                             eos_id=tokenizer.eos_id)


def build_model(cfg: ModelConfig, *, tokenizer: SharedTokenizer | None = None,
                vit_weights: str | Path | None = None, text_model: str | Path | None = None,
                pretrained_text: bool = True, adapter: AdapterSpec | None = None) -> M3FM:
    """The model of ``cfg``; with ``text_model`` (a local Hugging Face directory) its text tower and
    tokenizer come from there (``pretrained_text=False``: its architecture only, weights to be loaded)."""
    if text_model and not cfg.text_arch:
        cfg = cfg.with_text_model(text_model)
    tokenizer = tokenizer or load_tokenizer(text_model or DEFAULT_TOKENIZER)
    model = M3FM(cfg, tokenizer, vit_weights=vit_weights, text_model=text_model, pretrained_text=pretrained_text)
    return add_adapters(model, adapter) if adapter else model


def parameter_counts(model: M3FM) -> dict[str, int]:
    return {"clip_image": sum(p.numel() for p in model.clip.visual.parameters()),
            "clip_text": sum(p.numel() for p in model.clip.text.parameters()),
            "lm": sum(p.numel() for p in model.lm.parameters()),
            "total": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}
