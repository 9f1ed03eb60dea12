"""A `tiny` model trained for a few seconds on a small synthetic dataset, once per test process.

Long enough for both objectives to learn something (zero-shot scores above chance, reports in the
training reports' words, which is also when greedy decoding starts looping); short enough for
tests that need *a trained model* rather than a good one.
"""
from __future__ import annotations

import math
import tempfile
from functools import lru_cache
from pathlib import Path

import torch

PATIENTS, SEED = 30, 7


@lru_cache(maxsize=1)
def trained_tiny() -> tuple[Path, Path]:
    """(dataset folder, checkpoint) under a fresh temporary folder."""
    from client.data.dataset import decode, pair_batches, text_batches
    from client.data.sources import load_records
    from shared_model.checkpoint import save_checkpoint
    from shared_model.config import get_preset
    from shared_model.model import build_model
    from shared_model.objectives import contrastive_epoch, lm_epoch, make_optimizer, one_cycle
    from shared_model.train_config import TrainConfig
    from sim.synth import generate

    root = Path(tempfile.mkdtemp(prefix="m3fed-trained-tiny-"))
    generate(root / "data", patients=PATIENTS, seed=SEED, difficulty=0.0)
    torch.manual_seed(0)
    cfg = get_preset("tiny")
    records, report = load_records(root / "data")
    train = decode([r for r in records if r.split == "train"], cfg.image_size, report)
    model = build_model(cfg)
    device, gen = torch.device("cpu"), torch.Generator().manual_seed(0)
    t = TrainConfig(batch_size=32, lm_batch_size=16, lr=2e-3, lm_lr=3e-3)
    epochs = {"contrastive": 5, "lm": 5}
    clip_opt, lm_opt = make_optimizer(model.clip.parameters(), t.lr, t.weight_decay), \
        make_optimizer(model.lm.parameters(), t.lm_lr, t.weight_decay)
    clip_sched = one_cycle(clip_opt, epochs["contrastive"] * math.ceil(int((train.image_index >= 0).sum()) / 32))
    lm_sched = one_cycle(lm_opt, epochs["lm"] * math.ceil(len(train.records) / 16))
    for _ in range(epochs["contrastive"]):
        contrastive_epoch(model, pair_batches(train, 32, gen), clip_opt, t, device, scheduler=clip_sched)
    for _ in range(epochs["lm"]):
        lm_epoch(model, text_batches(train, 16, gen), lm_opt, t, device, scheduler=lm_sched)
    save_checkpoint(root / "run" / "model.safetensors", model.eval())
    return root / "data", root / "run" / "model.safetensors"
