"""The model a fine-tuning run starts from: a run directory, a checkpoint, or random weights of a preset."""
from __future__ import annotations

from pathlib import Path

from client.finetune.config import FinetuneConfig
from shared_model.adapters import merged
from shared_model.checkpoint import ModelSource, load_checkpoint
from shared_model.errors import CheckpointError
from shared_model.model import M3FM, build_model

# In a run directory, the model for use: with adapters the merged export, else the selected weights.
RUN_MODELS = ("model-merged.safetensors", "model.safetensors")


def start_path(model: str) -> Path:
    """The checkpoint file ``--model`` names (a run directory's model for use), or CheckpointError saying why not."""
    path = Path(model)
    if path.is_dir():
        for name in RUN_MODELS:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"--model {model}: a directory without {' or '.join(RUN_MODELS)} "
                              "(not a finished m3fed run directory)")
    if not path.is_file():
        raise CheckpointError(f"--model {model}: no such file or run directory (or 'random' for random weights)")
    return path


def load_start(cfg: FinetuneConfig) -> tuple[M3FM, dict]:
    """The starting model (a plain model: adapters folded in) and where it came from, for results.json."""
    if cfg.random_start:
        model = ModelSource(preset=cfg.preset).initial(seed=cfg.seed)
        return model, {"model": "random", "preset": cfg.preset, "seed": cfg.seed}
    path = start_path(cfg.model)
    try:
        model, meta = load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"--model: {exc}") from None
    if model.adapter:  # a checkpoint file with adapters: fold them in, as a run's merged export does
        fresh = build_model(model.cfg, tokenizer=model.tokenizer, text_model=model.text_model or None,
                            pretrained_text=False)
        model = merged(model, model.adapter, fresh)
    return model, {"model": str(path), "preset": model.cfg.preset, "tokenizer_sha256": meta["tokenizer_sha256"]}
