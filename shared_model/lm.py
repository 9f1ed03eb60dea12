"""MultiMedLM: a BERT encoder-decoder that writes a report from one embedding.

Trained on text only (conditioned on the CLIP text embedding of the report itself); at
inference the CLIP image embedding is first projected onto a memory bank of training-report
text embeddings (``project_onto_bank``), the M3FM/DeCap zero-shot mechanism. The language of
the output is the decoder's first token, ``[EN]`` or ``[ZH]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

from shared_model.config import ModelConfig


class MultiMedLM(nn.Module):
    def __init__(self, cfg: ModelConfig, *, vocab_size: int, pad_id: int, eos_id: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id, self.eos_id = pad_id, eos_id
        common = dict(vocab_size=vocab_size, hidden_size=cfg.lm_dim, num_attention_heads=cfg.lm_heads,
                      intermediate_size=cfg.lm_ff, pad_token_id=pad_id, type_vocab_size=1,
                      hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout)
        encoder = BertConfig(num_hidden_layers=cfg.lm_encoder_layers,
                             max_position_embeddings=cfg.lm_prefix_tokens, **common)
        decoder = BertConfig(num_hidden_layers=cfg.lm_decoder_layers, is_decoder=True,
                             add_cross_attention=True, max_position_embeddings=cfg.max_report_len,
                             **common)
        config = EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
        config.pad_token_id, config.eos_token_id = pad_id, eos_id
        config.decoder_start_token_id = pad_id  # replaced per example by the language token
        self.seq2seq = EncoderDecoderModel(config=config)
        self.seq2seq.generation_config.pad_token_id = pad_id
        self.seq2seq.generation_config.eos_token_id = eos_id
        self.prefix = nn.Linear(cfg.embed_dim, cfg.lm_prefix_tokens * cfg.lm_dim)

    def top_layers(self) -> list[nn.Module]:
        """The decoder, short of its vocabulary-sized output layer; the encoder below reads only the prefix.

        Measured with the noise off (BENCHMARKS.md, issue C): the decoder's last block alone learned
        too little (BLEU-4 zh 0.02 against 0.28 with every layer); the whole decoder learned as
        much as every layer, with or without the output layer's bias, which stays out (the output
        layer's per-example gradient is the costliest one Opacus computes here).
        """
        decoder = self.seq2seq.decoder
        return [decoder.bert, decoder.cls.predictions.transform]

    def _prefix(self, condition: torch.Tensor) -> torch.Tensor:
        batch = condition.shape[0]
        return self.prefix(condition).view(batch, self.cfg.lm_prefix_tokens, self.cfg.lm_dim)

    def _encoder_kwargs(self, condition: torch.Tensor) -> dict:
        batch, device = condition.shape[0], condition.device
        positions = torch.arange(self.cfg.lm_prefix_tokens, device=device).expand(batch, -1)
        return dict(inputs_embeds=self._prefix(condition),
                    attention_mask=torch.ones(batch, self.cfg.lm_prefix_tokens, dtype=torch.long, device=device),
                    position_ids=positions, token_type_ids=torch.zeros_like(positions))

    def per_example_loss(self, condition: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of ``target_ids[:, 1:]`` given ``target_ids[:, :-1]``, one value per example.

        Each row's loss depends on that row alone, which keeps per-sample clipping meaningful.
        """
        inputs, targets = target_ids[:, :-1], target_ids[:, 1:]
        dec_positions = torch.arange(inputs.shape[1], device=inputs.device).expand_as(inputs)
        out = self.seq2seq(**self._encoder_kwargs(condition), decoder_input_ids=inputs,
                           decoder_attention_mask=(inputs != self.pad_id).long(),
                           decoder_position_ids=dec_positions,
                           decoder_token_type_ids=torch.zeros_like(inputs))
        logits = out.logits.float()
        # Flattened (B*L, V): cross_entropy over a transposed (B, V, L) view is ~10x slower on CPU.
        token_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     ignore_index=self.pad_id, reduction="none").view_as(targets)
        counts = (targets != self.pad_id).sum(1).clamp(min=1)
        return token_loss.sum(1) / counts

    @torch.no_grad()
    def generate(self, condition: torch.Tensor, start_ids: torch.Tensor, *, num_beams: int = 1,
                 max_len: int | None = None, max_new_tokens: int = 0, no_repeat_ngram_size: int = 0,
                 repetition_penalty: float = 1.0, length_penalty: float = 1.0,
                 suppress_tokens: list[int] | None = None) -> torch.Tensor:
        """Greedy (num_beams=1) or beam decoding from ``start_ids`` (B,) language tokens.

        The rest are transformers' own generation options (``shared_model.generation`` chooses
        them per language); the defaults are plain decoding. The output is at most ``max_len``
        (default the model's ``max_report_len``) tokens, the language token included.
        """
        enc = self._encoder_kwargs(condition)
        limit = max_len or self.cfg.max_report_len
        if max_new_tokens:
            limit = min(limit, max_new_tokens + 1)
        return self.seq2seq.generate(
            inputs_embeds=enc["inputs_embeds"], attention_mask=enc["attention_mask"],
            decoder_start_token_id=start_ids, num_beams=num_beams, do_sample=False,
            max_length=limit, early_stopping=num_beams > 1,
            no_repeat_ngram_size=no_repeat_ngram_size or None,
            repetition_penalty=None if repetition_penalty == 1.0 else repetition_penalty,
            length_penalty=length_penalty if num_beams > 1 else None, suppress_tokens=suppress_tokens or None)

    @torch.no_grad()
    def complete(self, condition: torch.Tensor, prefix_ids: torch.Tensor, *, new_tokens: int) -> torch.Tensor:
        """Greedy continuation of given decoder inputs ``prefix_ids`` (B, L), language token first, by at most
        ``new_tokens`` tokens; returns the prefix and its continuation. For audits: what the decoder writes
        after a text someone already knows (a canary's format, privacy.canaries)."""
        enc = self._encoder_kwargs(condition)
        return self.seq2seq.generate(inputs_embeds=enc["inputs_embeds"], attention_mask=enc["attention_mask"],
                                     decoder_input_ids=prefix_ids, decoder_start_token_id=prefix_ids[:, 0],
                                     max_new_tokens=new_tokens, num_beams=1, do_sample=False)


def project_onto_bank(image_embeddings: torch.Tensor, bank: torch.Tensor, *, temperature: float = 0.01
                      ) -> torch.Tensor:
    """Map image embeddings into the text-embedding region: softmax(v·Pᵀ/τ)·P, renormalised."""
    weights = torch.softmax(image_embeddings @ bank.T / temperature, dim=-1)
    return F.normalize(weights @ bank, dim=-1)
