"""Model presets: one frozen, validated config written next to every checkpoint."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of MultiMedCLIP (ViT + BERT text encoder) and MultiMedLM (BERT encoder-decoder)."""

    preset: str
    # MultiMedCLIP image side: a timm ViT; the arch name picks timm's defaults, the sizes override.
    vit_arch: str
    image_size: int
    patch_size: int
    vit_dim: int
    vit_depth: int
    vit_heads: int
    # MultiMedCLIP text side: a BERT-family multilingual encoder over the shared tokenizer.
    text_dim: int
    text_layers: int
    text_heads: int
    text_ff: int
    max_text_len: int
    # The shared image-text space.
    embed_dim: int
    # MultiMedLM: the conditioning vector becomes `lm_prefix_tokens` encoder tokens.
    lm_dim: int
    lm_encoder_layers: int
    lm_decoder_layers: int
    lm_heads: int
    lm_ff: int
    lm_prefix_tokens: int
    max_report_len: int
    dropout: float = 0.1
    vit_pool: str = "avg"  # mean of patch tokens learns small data faster than the CLS token
    # "": m3fed's own BERT over the shipped tokenizer; else the model type of a --text-model
    # directory, whose sizes replace the text_* fields (``with_text_model``).
    text_arch: str = ""

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        for dim, heads, what in ((self.vit_dim, self.vit_heads, "vit"), (self.text_dim, self.text_heads, "text"),
                                 (self.lm_dim, self.lm_heads, "lm")):
            if dim % heads:
                raise ValueError(f"{what} width {dim} is not divisible by its {heads} heads")
        if self.vit_pool not in ("avg", "token"):
            raise ValueError(f"vit_pool must be 'avg' or 'token', got {self.vit_pool!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if min(self.max_text_len, self.max_report_len, self.lm_prefix_tokens) < 1:
            raise ValueError("sequence lengths must be positive")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def with_text_model(self, path) -> "ModelConfig":
        """This config with the text tower of a local Hugging Face directory (its sizes, at most its positions)."""
        from shared_model.text_model import text_config

        sizes = text_config(path)
        positions = sizes.pop("max_positions")
        return dataclasses.replace(self, **sizes, max_text_len=min(self.max_text_len, positions))

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)


PRESETS: dict[str, ModelConfig] = {
    # Learns the synthetic data in minutes on 2 CPU cores; used by tests and the demo.
    "tiny": ModelConfig(
        preset="tiny", vit_arch="vit_tiny_patch16_224", image_size=64, patch_size=8,
        vit_dim=128, vit_depth=4, vit_heads=4,
        text_dim=128, text_layers=2, text_heads=4, text_ff=256, max_text_len=64,
        embed_dim=128,
        lm_dim=128, lm_encoder_layers=2, lm_decoder_layers=2, lm_heads=4, lm_ff=256,
        lm_prefix_tokens=4, max_report_len=80, dropout=0.0,
    ),
    # ViT-B/16 at 224 px, BERT-base-size text encoder, BERT-base-width 6+3 MultiMedLM.
    "paper": ModelConfig(
        preset="paper", vit_arch="vit_base_patch16_224", image_size=224, patch_size=16,
        vit_dim=768, vit_depth=12, vit_heads=12,
        text_dim=768, text_layers=12, text_heads=12, text_ff=3072, max_text_len=256,
        embed_dim=512,
        lm_dim=768, lm_encoder_layers=6, lm_decoder_layers=3, lm_heads=12, lm_ff=3072,
        lm_prefix_tokens=8, max_report_len=160,
    ),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


# The half of the model each objective trains (state-dict key prefix): what a site sends back.
# Here, not in model.py, so SecAgg+ protocol stages can use it without importing torch.
TRAINED_PREFIX = {"contrastive": "clip.", "report-generation": "lm."}
# One tensor under two keys (the decoder's token table is its output layer's weight; BERT's LM-head
# bias is the output layer's bias): sent and aggregated once, under the second name of each pair.
ALIASES = {
    "lm.seq2seq.decoder.cls.predictions.decoder.weight": "lm.seq2seq.decoder.bert.embeddings.word_embeddings.weight",
    "lm.seq2seq.decoder.cls.predictions.decoder.bias": "lm.seq2seq.decoder.cls.predictions.bias",
}
# No update changes it: the LM's encoder reads the prefix embeddings, never token ids.
UNTRAINED = frozenset({"lm.seq2seq.encoder.embeddings.word_embeddings.weight"})


# With adapters (shared_model.adapters), what trains beside them in full: both projections, the
# temperature and MultiMedLM's prefix layer.
ADAPTER_HEADS = ("clip.image_proj.", "clip.text_proj.", "clip.logit_scale", "lm.prefix.")


def trained_keys(keys: Iterable[str], objective: str) -> list[str]:
    """The state-dict keys a site's update of ``objective`` can change, each tensor once: what it sends back.

    A model with adapters (peft's ``lora_`` keys) trains and sends only its adapters and heads.
    """
    keys = list(keys)
    prefix, adapted = TRAINED_PREFIX[objective], any(".lora_" in k for k in keys)
    return [k for k in keys if k.startswith(prefix) and k not in ALIASES and k not in UNTRAINED
            and (not adapted or ".lora_" in k or k.startswith(ADAPTER_HEADS))]


def fill_aliases(arrays: MutableMapping) -> None:
    """Give each alias key its tensor's value, after aggregation or noise changed the key that was sent."""
    for alias, key in ALIASES.items():
        if key in arrays:
            arrays[alias] = arrays[key]
