"""MultiMedCLIP: a timm ViT and a BERT-family multilingual text encoder in one space."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

from shared_model.config import ModelConfig

# Grayscale inputs in [0, 1] are centred here so every data source feeds the same range.
_PIXEL_MEAN, _PIXEL_STD = 0.5, 0.25


class MultiMedCLIP(nn.Module):
    """Image and report encoders projected to one L2-normalised space, with a learnable temperature."""

    def __init__(self, cfg: ModelConfig, *, vocab_size: int, pad_id: int,
                 vit_weights: str | Path | None = None, text_model: str | Path | None = None,
                 pretrained_text: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        overlay = {"file": str(vit_weights)} if vit_weights else None
        # pretrained=True only with a local file: timm then adapts 3-channel weights to 1 channel.
        self.visual = timm.create_model(
            cfg.vit_arch, pretrained=vit_weights is not None, pretrained_cfg_overlay=overlay,
            num_classes=0, in_chans=1, img_size=cfg.image_size, patch_size=cfg.patch_size,
            embed_dim=cfg.vit_dim, depth=cfg.vit_depth, num_heads=cfg.vit_heads,
            drop_rate=cfg.dropout, global_pool=cfg.vit_pool)
        if text_model:  # a local Hugging Face encoder (shared_model.text_model); nothing is downloaded
            from shared_model.text_model import build_text_tower, position_offset

            self.text = build_text_tower(text_model, pretrained=pretrained_text, dropout=cfg.dropout)
            self._position_offset = position_offset(cfg.text_arch, self.text.config.pad_token_id)
        else:
            self.text = BertModel(BertConfig(
                vocab_size=vocab_size, hidden_size=cfg.text_dim, num_hidden_layers=cfg.text_layers,
                num_attention_heads=cfg.text_heads, intermediate_size=cfg.text_ff,
                max_position_embeddings=cfg.max_text_len, type_vocab_size=1, pad_token_id=pad_id,
                hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
            ), add_pooling_layer=False)
            self._position_offset = 0
        accepted = inspect.signature(self.text.forward).parameters
        self._explicit_ids = "position_ids" in accepted and "token_type_ids" in accepted
        self.image_proj = nn.Linear(cfg.vit_dim, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> (B, embed_dim), unit norm."""
        features = self.visual((images - _PIXEL_MEAN) / _PIXEL_STD)
        return F.normalize(self.image_proj(features).float(), dim=-1)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled BERT states -> (B, embed_dim), unit norm."""
        # Explicit (B, L) position and token-type ids: Opacus' per-sample hooks need a batch dim.
        extra = {}
        if self._explicit_ids:
            positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids) + self._position_offset
            extra = {"position_ids": positions, "token_type_ids": torch.zeros_like(ids)}
        states = self.text(input_ids=ids, attention_mask=mask, **extra).last_hidden_state
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return F.normalize(self.text_proj(pooled).float(), dim=-1)

    def top_layers(self) -> list[nn.Module]:
        """The last block of each tower, the ViT's final norm and both projections."""
        return [self.visual.blocks[-1], self.visual.norm, self.visual.fc_norm, self.text.encoder.layer[-1],
                self.image_proj, self.text_proj]

    def temperature_scale(self) -> torch.Tensor:
        # Clamped as in CLIP so the logits cannot blow up late in training.
        return self.logit_scale.exp().clamp(max=100.0)
