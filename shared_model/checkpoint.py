"""Weights in safetensors with the model config and tokenizer hash in the header.

Loading weights made with another tokenizer would silently scramble every embedding row, so
``load_checkpoint`` refuses it and says which tokenizers differ.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from shared_model.config import ModelConfig
from shared_model.errors import CheckpointError
from shared_model.model import M3FM, build_model
from shared_model.tokenizer import SharedTokenizer, load_tokenizer

FORMAT = "m3fed.checkpoint/1"


def save_checkpoint(path: str | Path, model: M3FM, *, extra: dict | None = None) -> None:
    meta = {"format": FORMAT, "model_config": model.cfg.to_dict(), "tokenizer_sha256": model.tokenizer.sha256,
            "tokenizer_file": model.tokenizer.path.name, **(extra or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # save_model drops tied copies (the decoder's input and output embeddings share storage).
    save_model(model, str(path), metadata={"m3fed": json.dumps(meta)})


def read_metadata(path: str | Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get("m3fed")
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: no m3fed metadata (not an m3fed checkpoint)")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def check_tokenizer(meta: dict, tokenizer: SharedTokenizer, path: str | Path) -> None:
    if meta["tokenizer_sha256"] != tokenizer.sha256:
        raise CheckpointError(
            f"{path}: made with tokenizer {meta.get('tokenizer_file')} sha256 {meta['tokenizer_sha256'][:12]}…, "
            f"but this site uses {tokenizer.path.name} sha256 {tokenizer.sha256[:12]}…; refusing to load weights "
            "trained on another vocabulary")


def load_checkpoint(path: str | Path, *, tokenizer: SharedTokenizer | None = None) -> tuple[M3FM, dict]:
    tokenizer = tokenizer or load_tokenizer()
    meta = read_metadata(path)
    check_tokenizer(meta, tokenizer, path)
    model = build_model(ModelConfig.from_dict(meta["model_config"]), tokenizer=tokenizer)
    load_model(model, str(path))
    return model, meta


def load_weights_into(model: M3FM, path: str | Path) -> dict:
    """Initialise ``model`` from a checkpoint of the same config and tokenizer (e.g. pretrained weights)."""
    meta = read_metadata(path)
    check_tokenizer(meta, model.tokenizer, path)
    check_model_config(meta, model.cfg, path)
    load_model(model, str(path))
    return meta


def check_model_config(meta: dict, cfg: ModelConfig, path: str | Path) -> None:
    """Refuse a checkpoint made for other model sizes, naming every field that differs."""
    theirs, ours = meta["model_config"], cfg.to_dict()
    if theirs != ours:
        diff = ", ".join(f"{k} {theirs.get(k)!r} (this run: {ours.get(k)!r})" for k in sorted(set(theirs) | set(ours))
                         if theirs.get(k) != ours.get(k))
        raise CheckpointError(f"{path}: made for another model config: {diff}")


def initial_model(cfg: ModelConfig, *, seed: int, init: str | Path | None = None) -> M3FM:
    """A run's starting weights: drawn from ``seed``, or ``init``'s (a checkpoint of the same config and tokenizer).

    The federation and its pooled and single-site baselines all start here, so they compare like with like.
    """
    torch.manual_seed(seed)
    model = build_model(cfg)
    if init:
        load_weights_into(model, init)
    return model


def tensor_bytes(state: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())
