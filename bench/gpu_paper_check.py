"""GPU check of the paper preset: build, bf16 autocast steps of both objectives, step times, memory.

Run on a CUDA machine: ``python bench/gpu_paper_check.py``; prints one JSON line.
"""
from __future__ import annotations

import json
import time

import torch

from shared_model.config import get_preset
from shared_model.device import autocast, resolve_device
from shared_model.model import build_model, parameter_counts
from shared_model.objectives import TrainConfig, contrastive_epoch, lm_epoch, make_optimizer


def main() -> None:
    device = resolve_device("auto")
    assert device.type == "cuda", "this check needs a GPU"
    torch.manual_seed(0)
    model = build_model(get_preset("paper")).to(device)
    cfg, train = model.cfg, TrainConfig(batch_size=32)
    texts = ["There is a small left pleural effusion. The heart is enlarged. No pneumothorax."] * 16 + \
            ["左侧少量胸腔积液。心影增大。未见气胸。"] * 16
    langs = ["en"] * 16 + ["zh"] * 16
    images = torch.rand(32, 1, cfg.image_size, cfg.image_size)
    clip_opt = make_optimizer(model.clip.parameters(), train.lr, train.weight_decay)
    lm_opt = make_optimizer(model.lm.parameters(), train.lm_lr, train.weight_decay)
    out = {"device": torch.cuda.get_device_name(), "parameters": parameter_counts(model),
           "bf16": torch.cuda.is_bf16_supported()}
    for name, run in (("contrastive", lambda: contrastive_epoch(model, [(images, texts)] * 5, clip_opt, train, device)),
                      ("report_generation", lambda: lm_epoch(model, [(texts, langs)] * 5, lm_opt, train, device))):
        run()  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = run()
        torch.cuda.synchronize()
        out[f"{name}_step_s_batch32"] = (time.perf_counter() - start) / 5
        out[f"{name}_loss"] = loss
    with torch.no_grad(), autocast(device):
        cond = torch.nn.functional.normalize(torch.randn(4, cfg.embed_dim, device=device), dim=-1)
        start_ids = torch.full((4,), model.tokenizer.lang_ids["en"], device=device)
        out["generate_shape"] = list(model.lm.generate(cond, start_ids, num_beams=3, max_len=20).shape)
    out["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(out))


if __name__ == "__main__":
    main()
