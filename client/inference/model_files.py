"""The model a hospital uses: found in a run directory or a checkpoint file, loaded plain, identified by hash.

A run directory holds ``model.safetensors`` (the selected model) and, for a run with adapters,
``model-merged.safetensors`` (the same weights with the adapters folded in): the merged one is
used when present, as the model card says; a checkpoint with adapters is merged on load, so
inference always runs the plain model. The weights are named by their file's sha256, the hash the
model card lists and a site keeps beside the final model.
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
HASH_FILE = "model.sha256"  # a site's kept model: `sha256sum -c` format (client.app.final_model)


def model_file(path: str | Path) -> tuple[Path, str | None]:
    """The checkpoint ``path`` is or holds, and the sha256 a ``model.sha256`` beside it states (None: none).

    A directory is a run directory (``RUN_MODEL_FILES``) or a site's ``model/`` folder, whose
    ``model.sha256`` names the file (a simulated site's names the run's own ``model.safetensors``).
    """
    path = Path(path)
    if not path.is_dir():
        if not path.exists():
            raise CheckpointError(f"{path}: no such run directory or checkpoint file")
        return path, None
    stated = _stated(path / HASH_FILE)
    for name in RUN_MODEL_FILES:
        if (path / name).is_file():
            return path / name, stated.get(name)
    if len(stated) == 1:
        (name, sha256), = stated.items()
        if (path / name).is_file():
            return (path / name).resolve(), sha256
    raise CheckpointError(f"{path}: no {' or '.join(RUN_MODEL_FILES)} here and no {HASH_FILE} naming one "
                          "(not a finished run directory or a site's model folder)")


def _stated(hash_file: Path) -> dict[str, str]:
    """file name -> sha256 from a ``sha256sum`` file (empty when there is none)."""
    if not hash_file.is_file():
        return {}
    pairs = [line.split(maxsplit=1) for line in hash_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {name.strip().lstrip("*"): digest for digest, name in (p for p in pairs if len(p) == 2)}


def file_sha256(path: Path) -> str:
    """The checkpoint file's sha256: the hash the model card gives for it and a site keeps beside it."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True)
class InferenceModel:
    model: M3FM
    path: Path  # the file the weights came from
    weights_sha256: str  # of the file (file_sha256)
    meta: dict  # the checkpoint's header


def load_inference_model(path: str | Path, device: torch.device) -> InferenceModel:
    """The plain model of a run directory or checkpoint, in eval mode on ``device``."""
    file, stated = model_file(path)
    sha256 = file_sha256(file)
    if stated and stated != sha256:
        raise CheckpointError(f"{file}: sha256 {sha256[:12]}…, but {HASH_FILE} beside it says {stated[:12]}…: "
                              "the file changed since it was delivered; refusing to use it")
    model, meta = load_checkpoint(file)
    if model.adapter:
        plain = build_model(model.cfg, tokenizer=model.tokenizer, text_model=model.text_model or None,
                            pretrained_text=False)
        model = merged(model, model.adapter, plain)
    return InferenceModel(model=model.to(device).eval(), path=file, weights_sha256=sha256, meta=meta)
