"""Issue H (c), for a lent GPU machine: the ``paper`` preset, 4 virtual sites at 0.25 GPU each on one
GPU, each site's images/s (contrastive training) against a plain PyTorch loop on the same GPU with the
same batch size, and the whole job's wall time. ``python bench/scale_bench.py --parts gpu``."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from shared_model.config import get_preset
from shared_model.device import autocast
from shared_model.model import build_model
from shared_model.objectives import contrastive_loss, make_optimizer

BATCH, STEPS = 32, 30


def plain_loop_images_per_s() -> float:
    """The ceiling: one process, the paper model, AdamW steps of the contrastive objective, bf16 autocast."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model(get_preset("paper")).to(device).train()
    optimizer = make_optimizer(model.clip.parameters(), 1e-4, 0.01)
    images = torch.rand(BATCH, 1, model.cfg.image_size, model.cfg.image_size, device=device)
    texts = ["There is a small left pleural effusion. No pneumothorax."] * (BATCH // 2) + ["心影增大。"] * (BATCH // 2)
    for step in range(STEPS + 5):  # 5 warm-up steps
        if step == 5:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with autocast(device):
            loss = contrastive_loss(model, images, texts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    del model, optimizer
    torch.cuda.empty_cache()
    return STEPS * BATCH / seconds


def gpu_part(out: Path) -> dict:
    from sim.simulate import SimConfig, run_simulation
    from sim.synth import generate

    assert torch.cuda.is_available(), "part gpu needs a CUDA GPU"
    plain = plain_loop_images_per_s()
    data = out / "gpu-data"
    if not (data / "m3fed-synth.json").is_file():
        generate(data, patients=600, seed=0)
    cores = os.cpu_count() or 4
    cfg = SimConfig(data=str(data), out=str(out / "gpu-sim"), sites=4, rounds=1, schedule="contrastive",
                    partition="iid", text_only_sites=0, local_epochs=1, batch_size=BATCH, preset="paper",
                    device="cuda", cpus_per_site=max(1, cores // 4), gpus_per_site=0.25, compare=False)
    started = time.perf_counter()
    doc = run_simulation(cfg)
    wall = time.perf_counter() - started
    sites = {}
    for line in (Path(cfg.out) / "progress.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "site" and event.get("seconds"):
            sites[f"site-{event['site'] + 1}"] = event["examples"] * cfg.local_epochs / event["seconds"]
    return {"device": torch.cuda.get_device_name(), "plain_loop_images_per_s": plain, "site_images_per_s": sites,
            "site_over_plain": {k: v / plain for k, v in sites.items()},
            "sum_over_plain": sum(sites.values()) / plain, "job_wall_s": wall,
            "auc_macro": doc["final"]["auc_macro"]}
