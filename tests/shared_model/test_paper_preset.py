"""The paper preset builds and takes one forward/backward step of both objectives (slow)."""
from __future__ import annotations

import pytest
import torch

from shared_model.config import get_preset
from shared_model.model import build_model, parameter_counts
from shared_model.objectives import contrastive_loss, lm_per_example_loss


@pytest.mark.slow
def test_paper_preset_one_step():
    torch.manual_seed(0)
    model = build_model(get_preset("paper")).train()
    counts = parameter_counts(model)
    print("paper preset parameters:", counts)
    # ViT-B/16 (~86M), a BERT-base-size text encoder, a 6+3 BERT-base-width encoder-decoder.
    assert 80e6 < counts["clip_image"] < 90e6
    assert counts["clip_text"] > 80e6 and counts["lm"] > 80e6
    cfg = model.cfg
    images = torch.rand(2, 1, cfg.image_size, cfg.image_size)
    texts, langs = ["There is a small left pleural effusion.", "心影增大。"], ["en", "zh"]
    loss = contrastive_loss(model, images, texts) + lm_per_example_loss(
        model, texts, langs, noise_std=0.04, device=torch.device("cpu")).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert model.clip.visual.patch_embed.proj.weight.grad is not None
    assert model.lm.prefix.weight.grad is not None
