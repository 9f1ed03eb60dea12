"""A pretrained text tower from a local Hugging Face directory (``--text-model DIR``), never a hub.

The directory is what ``save_pretrained`` writes for an encoder and its tokenizer (e.g. a
multilingual BERT or XLM-R a hospital downloaded once): ``config.json``, the weights and the
tokenizer's files. The tokenizer becomes the model's only tokenizer: the text tower reads it and
MultiMedLM writes with it, with ``[EN]`` / ``[ZH]`` added as the language tokens that start a report.

Its identity is a SHA-256 over its files (name and content), so two sites that copied the same
directory agree, and any other tokenizer differs. That hash takes the place of the shipped
tokenizer's in checkpoints and in the federation's check (``shared_model.tokenizer``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from shared_model.errors import CheckpointError

# Files that hold model weights or architecture, not the tokenizer: left out of its identity.
_NOT_TOKENIZER = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".md")
_NOT_TOKENIZER_NAMES = {"config.json", "generation_config.json", "model.safetensors.index.json"}
# A sentence of each language: the share of it a tokenizer maps to its unknown token.
PROBES = {"en": "the lungs are clear. no pleural effusion or pneumothorax. heart size is normal.",
          "zh": "双肺清晰，未见胸腔积液及气胸。心影大小正常。右下肺见斑片状阴影。"}


def check_text_model_dir(path: str | Path) -> Path:
    """The directory, or a CheckpointError saying what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"--text-model {path}: not a directory (a Hugging Face model saved with save_pretrained)")
    if not (path / "config.json").is_file():
        raise CheckpointError(f"--text-model {path}: no config.json (not a Hugging Face model directory)")
    if not tokenizer_files(path):
        raise CheckpointError(f"--text-model {path}: no tokenizer files (save the tokenizer with the model)")
    return path


def tokenizer_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file() and p.name not in _NOT_TOKENIZER_NAMES
                  and not p.name.endswith(_NOT_TOKENIZER) and not p.name.startswith("."))


def tokenizer_sha256(path: str | Path) -> str:
    """The tokenizer's identity: SHA-256 over (name, SHA-256 of content) of each of its files."""
    digest = hashlib.sha256(b"m3fed.hf-tokenizer/1")
    for file in tokenizer_files(Path(path)):
        digest.update(file.name.encode() + b"\0" + hashlib.sha256(file.read_bytes()).hexdigest().encode() + b"\n")
    return digest.hexdigest()


def load_backend(path: str | Path):
    """(the fast tokenizer's ``tokenizers.Tokenizer``, special tokens) of a model directory."""
    from transformers import AutoTokenizer

    path = check_text_model_dir(path)
    try:
        hf = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable tokenizer is the user's directory's problem
        raise CheckpointError(f"--text-model {path}: its tokenizer does not load ({type(exc).__name__}: {exc})") from None
    if not getattr(hf, "is_fast", False):
        raise CheckpointError(f"--text-model {path}: needs a fast tokenizer (tokenizer.json); save it with "
                              "AutoTokenizer.from_pretrained(..., use_fast=True).save_pretrained(DIR)")
    specials = {"pad": hf.pad_token, "cls": hf.cls_token or hf.bos_token, "eos": hf.sep_token or hf.eos_token,
                "unk": hf.unk_token}
    missing = [role for role, token in specials.items() if token is None]
    if missing:
        raise CheckpointError(f"--text-model {path}: its tokenizer has no {', '.join(missing)} token")
    backend = hf.backend_tokenizer
    backend.no_truncation()
    backend.no_padding()
    return backend, specials


def text_config(path: str | Path) -> dict:
    """Sizes of the directory's encoder, in ``ModelConfig``'s terms."""
    from transformers import AutoConfig

    path = check_text_model_dir(path)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"--text-model {path}: config.json does not load ({type(exc).__name__}: {exc})") from None
    need = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings")
    missing = [k for k in need if not hasattr(config, k)]
    if missing:
        raise CheckpointError(f"--text-model {path}: a {config.model_type} config has no {', '.join(missing)} "
                              "(an encoder of the BERT family is needed)")
    return {"text_arch": config.model_type, "text_dim": config.hidden_size, "text_layers": config.num_hidden_layers,
            "text_heads": config.num_attention_heads, "text_ff": config.intermediate_size,
            "max_positions": config.max_position_embeddings - position_offset(config.model_type, config.pad_token_id)}


def position_offset(model_type: str, pad_id: int | None) -> int:
    """RoBERTa-family encoders number positions from ``pad_id + 1``; BERT's from 0."""
    return (1 if pad_id is None else pad_id) + 1 if "roberta" in model_type else 0


def build_text_tower(path: str | Path, *, pretrained: bool, dropout: float):
    """The directory's encoder: its own weights (``pretrained``) or its architecture only (to load a checkpoint into)."""
    from transformers import AutoConfig, AutoModel

    path = check_text_model_dir(path)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if hasattr(config, key):
            setattr(config, key, dropout)
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # its load report lists the pooler's weights, left out on purpose
    hf_logging.disable_progress_bar()  # one bar per site per round in a simulation's log
    try:  # the pooler is never used (the tower is mean-pooled): leave it out where the class allows
        kwargs = {"add_pooling_layer": False}
        return (AutoModel.from_pretrained(str(path), config=config, local_files_only=True, **kwargs) if pretrained
                else AutoModel.from_config(config, **kwargs))
    except TypeError:
        return (AutoModel.from_pretrained(str(path), config=config, local_files_only=True) if pretrained
                else AutoModel.from_config(config))
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def unknown_share(tokenizer, language: str) -> float:
    """The share of a probe sentence in ``language`` that ``tokenizer`` cannot represent (its [UNK] pieces)."""
    pieces = tokenizer.pieces([PROBES[language]])[0]
    return sum(1 for p in pieces if p == tokenizer.unk_id) / max(len(pieces), 1)


def check_coverage(tokenizer, languages) -> None:
    """Refuse a tokenizer that cannot write a language the run trains on (e.g. an English-only BERT for zh).

    Every Chinese character it lacks would become one [UNK]: the report generator would learn to
    write [UNK] and the text tower would see reports as runs of one token.
    """
    for language in sorted(set(languages)):
        share = unknown_share(tokenizer, language)
        if share > 0.1:
            raise CheckpointError(
                f"tokenizer {tokenizer.name} maps {share:.0%} of a {language} sentence to its unknown token: it does "
                f"not cover {language}; use a tokenizer that does (e.g. a multilingual BERT or XLM-R) or leave "
                f"{language} out (--languages)")
