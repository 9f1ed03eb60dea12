"""Low-rank adapters (peft LoRA) on a frozen start: what a site trains and sends when ``--adapter lora:R``.

Every ``nn.Linear`` of the image tower, the text tower and MultiMedLM gets a rank-R LoRA pair
(``lora_A`` R×in, ``lora_B`` out×R, B = 0 at the start so the model is unchanged); the base weights
are frozen from the start. The heads train in full: both projections into the shared space, the
temperature and MultiMedLM's prefix layer (the link from that space to the decoder). The decoder's
output layer is left without an adapter: it shares its weight with the token table (tied), which
stays frozen. Keys of the adapted state dict are peft's (``...qkv.base_layer.weight``,
``...qkv.lora_A.default.weight``); ``shared_model.config.trained_keys`` sees the ``lora_`` keys and
sends only the adapters and heads. ``merged`` folds the adapters into the base weights (peft's
``merge_and_unload``): a plain model for inference, with the plain model's keys.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from shared_model.config import ADAPTER_HEADS

# Tied to the decoder's token table: no adapter (it would untie the pair).
_NO_ADAPTER = re.compile(r"cls\.predictions\.decoder$")
_SPEC = re.compile(r"lora:(\d+)")


@dataclass(frozen=True)
class AdapterSpec:
    rank: int

    @classmethod
    def parse(cls, text: str) -> "AdapterSpec | None":
        """``""`` (no adapters, the full model trains) or ``lora:R``."""
        if not text:
            return None
        match = _SPEC.fullmatch(text.strip())
        if not match or not 1 <= int(match.group(1)) <= 1024:
            raise ValueError(f"--adapter takes lora:R with a rank R from 1 to 1024, got {text!r}")
        return cls(int(match.group(1)))

    def __str__(self) -> str:
        return f"lora:{self.rank}"

    def lora_config(self, model: nn.Module):
        from peft import LoraConfig

        return LoraConfig(r=self.rank, lora_alpha=2 * self.rank, lora_dropout=0.0, bias="none",
                          target_modules=adapted_modules(model))


def adapted_modules(model: nn.Module) -> list[str]:
    """The full names of the linear layers that get an adapter."""
    towers = ("clip.visual.", "clip.text.", "lm.seq2seq.")
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and name.startswith(towers) and not _NO_ADAPTER.search(name)]


def add_adapters(model: nn.Module, spec: AdapterSpec) -> nn.Module:
    """Inject the adapters in place; only they and the heads stay trainable."""
    from peft import inject_adapter_in_model

    inject_adapter_in_model(spec.lora_config(model), model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name or name.startswith(ADAPTER_HEADS))
    model.adapter = spec
    return model


def merged(model: nn.Module, spec: AdapterSpec, fresh: nn.Module) -> nn.Module:
    """A plain model (``fresh``, built like ``model`` without adapters) holding ``model``'s weights with
    the adapters folded in: W + (alpha/R)·B·A, by peft."""
    from peft.tuners.lora import LoraModel

    tuner = LoraModel(fresh, spec.lora_config(fresh), "default")
    tuner.model.load_state_dict(model.state_dict())
    return tuner.merge_and_unload()
