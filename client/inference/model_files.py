"""The model a hospital uses: found in a run directory or a checkpoint file, loaded plain, identified by hash.

A run directory holds ``model.safetensors`` (the selected model) and, for a run with adapters,
``model-merged.safetensors`` (the same weights with the adapters folded in); either loads here,
and a model with adapters is merged on load, so inference always runs the plain model and the
same weights get the same hash whichever file they came from.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from shared_model.adapters import merged
from shared_model.checkpoint import load_checkpoint
from shared_model.errors import CheckpointError
from shared_model.model import M3FM, build_model

# In a run directory, in order of preference: the plain (adapters folded in) export first.
RUN_MODEL_FILES = ("model-merged.safetensors", "model.safetensors")


def model_file(path: str | Path) -> Path:
    """``path`` itself (a checkpoint) or the model file of the run directory ``path``."""
    path = Path(path)
    if path.is_dir():
        for name in RUN_MODEL_FILES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: no {' or '.join(RUN_MODEL_FILES)} here (not a finished run directory)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such run directory or checkpoint file")
    return path


def weights_sha256(model: M3FM) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order.

    It names the weights, not the file: a header (run config, round) may differ between two
    files holding the same model.
    """
    digest = hashlib.sha256(b"m3fed.weights/1\n")
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{value.dtype}\0{tuple(value.shape)}\n".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class InferenceModel:
    model: M3FM
    path: Path  # the file the weights came from
    weights_sha256: str
    meta: dict  # the checkpoint's header


def load_inference_model(path: str | Path, device: torch.device) -> InferenceModel:
    """The plain model of a run directory or checkpoint, in eval mode on ``device``."""
    file = model_file(path)
    model, meta = load_checkpoint(file)
    if model.adapter:
        plain = build_model(model.cfg, tokenizer=model.tokenizer, text_model=model.text_model or None,
                            pretrained_text=False)
        model = merged(model, model.adapter, plain)
    return InferenceModel(model=model.to(device).eval(), path=file, weights_sha256=weights_sha256(model), meta=meta)
