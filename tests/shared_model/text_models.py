"""Small local Hugging Face text models for tests: a 2-layer BERT and its fast tokenizer, saved with
save_pretrained (nothing is downloaded). The vocabulary is the shipped tokenizer's, so it covers
English and Chinese; ``chinese=False`` drops every CJK token, giving an English-only tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

from shared_model.tokenizer import DEFAULT_TOKENIZER, LANGUAGE_TOKENS


def _cjk(token: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef" for c in token)


def save_small_bert(out: Path, *, chinese: bool = True, hidden: int = 64) -> Path:
    """``out`` holding a BERT encoder (``hidden`` wide, 2 layers, 4 heads) and its BertTokenizerFast."""
    from transformers import BertConfig, BertModel, BertTokenizerFast
    from transformers.utils import logging as hf_logging

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = json.loads(DEFAULT_TOKENIZER.read_text(encoding="utf-8"))["model"]["vocab"]
    # [EN] / [ZH] are m3fed's own: SharedTokenizer adds them to any directory's tokenizer.
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in LANGUAGE_TOKENS.values()]
    if not chinese:
        tokens = [t for t in tokens if not _cjk(t)]
    BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True).save_pretrained(str(out))
    config = BertConfig(vocab_size=len(tokens), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=2 * hidden, max_position_embeddings=128)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        BertModel(config).save_pretrained(str(out))
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return out
