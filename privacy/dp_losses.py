"""A contrastive loss fit for DP-SGD: each example's term depends on that example and public, frozen data only.

CLIP's InfoNCE with in-batch negatives (``shared_model.objectives.contrastive_loss``) couples the
batch: example j's image and report are negatives in example i's term, so adding or removing j
changes i's gradient too, and clipping each example's gradient to C no longer bounds one
example's influence on the summed gradient by C (the sensitivity DP-SGD's noise is calibrated to).

Public-negative InfoNCE, a DP variant of the "frozen / decoupled negatives" family. For example i
with image embedding u_i and report embedding v_i (both trained), a bank P = {p_1..p_K} of PUBLIC
texts (the finding phrases of ``shared_model.findings``: no patient data) embedded by the current
text tower under ``torch.no_grad()`` once per step, and the temperature s held fixed (detached):

    image→text  ℓ_i^I = −log  e^{s·u_i·v_i} / (e^{s·u_i·v_i} + Σ_k e^{s·u_i·p_k})
    text→image  ℓ_i^T = −log  e^{s·v_i·u_i} / (e^{s·v_i·u_i} + Σ_k e^{s·v_i·p_k})
    term_i = (ℓ_i^I + ℓ_i^T) / 2,   loss = mean_i term_i

There are no public images, so the text→image direction keeps the example's own image as the
only image candidate and uses the same public text bank as distractors. A bank entry whose text
equals report i is dropped from i's negatives (the plain loss treats identical reports as
positives too). term_i is a function of (image_i, report_i), the weights and public data alone,
so clipping bounds one example's contribution to the gradient sum by C; and the sum of the terms
of one unit's pairs (a study's images with its reports, a patient's studies), clipped as one, bounds
that unit's. No term reads another pair of its own study either.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from shared_model.findings import PHRASES
from shared_model.model import M3FM

LossFn = Callable[[M3FM, torch.Tensor, list[str]], torch.Tensor]


def finding_phrases() -> list[str]:
    """Every finding phrase of every language: a public, patient-free text bank (sorted, distinct)."""
    return sorted({text for by_label in PHRASES.values() for phrases in by_label.values()
                   for text in (*phrases.positive, *phrases.negative, *phrases.uncertain)})


def embed_public(model: M3FM, texts: list[str], device: torch.device) -> torch.Tensor:
    """(K, D) bank embeddings by the current text tower, outside autograd and in eval mode (no dropout)."""
    text = model.clip.text
    was_training = text.training
    text.eval()
    try:
        with torch.no_grad():
            ids, mask = model.tokenizer.encode_text(texts, model.cfg.max_text_len)
            return model.clip.encode_text(ids.to(device), mask.to(device))
    finally:
        text.train(was_training)


def public_negative_terms(model: M3FM, images: torch.Tensor, texts: list[str], bank: torch.Tensor,
                          bank_texts: list[str]) -> torch.Tensor:
    """(B,) per-example terms ½(ℓ^I + ℓ^T); row i reads only image i, report i and the frozen bank."""
    clip = model.clip
    ids, mask = model.tokenizer.encode_text(texts, model.cfg.max_text_len)
    image_emb = clip.encode_image(images)
    text_emb = clip.encode_text(ids.to(images.device), mask.to(images.device))
    # Frozen temperature: MultiMedCLIP owns logit_scale directly, where Opacus' hooks cannot see it.
    scale = clip.temperature_scale().detach()
    positive = scale * (image_emb * text_emb).sum(-1, keepdim=True)
    same = torch.tensor([[t == b for b in bank_texts] for t in texts], dtype=torch.bool, device=images.device)
    image_neg = (scale * image_emb @ bank.T).masked_fill(same, float("-inf"))
    text_neg = (scale * text_emb @ bank.T).masked_fill(same, float("-inf"))
    target = torch.zeros(len(texts), dtype=torch.long, device=images.device)  # the positive is column 0
    image_to_text = F.cross_entropy(torch.cat([positive, image_neg], 1), target, reduction="none")
    text_to_image = F.cross_entropy(torch.cat([positive, text_neg], 1), target, reduction="none")
    return 0.5 * (image_to_text + text_to_image)


def dp_contrastive_loss(public_texts: list[str]) -> LossFn:
    """A ``loss_fn`` for ``contrastive_epoch``: the bank is re-embedded each step, the terms averaged."""
    if not public_texts:
        raise ValueError("the DP contrastive loss needs a non-empty bank of public texts")
    bank_texts = list(public_texts)

    def loss_fn(model: M3FM, images: torch.Tensor, texts: list[str]) -> torch.Tensor:
        bank = embed_public(model, bank_texts, images.device)
        return public_negative_terms(model, images, texts, bank, bank_texts).mean()

    return loss_fn
