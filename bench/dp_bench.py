"""DP-SGD step time against the plain step, side by side in one run, both objectives.

The same site data, batch size, epochs and model (``tiny``): ``client.site.local_update`` (plain)
against ``privacy.dp.private_update`` (Opacus per-sample gradients, clipping, noise, Poisson
sampling; record-level, public-negative contrastive loss). Seconds per optimizer step, median of
``--repeats`` alternating runs.

    python bench/dp_bench.py [--data DIR] [--patients 200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from client.dataset import decode
from client.site import local_update
from client.site_privacy import public_texts
from client.sources import load_records
from privacy.dp import planned_steps, private_update
from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.objectives import TrainConfig
from sim.synth import generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    data = Path(args.data or tempfile.mkdtemp()) if args.data else Path(tempfile.mkdtemp()) / "d"
    if not (data / "m3fed-synth.json").is_file():
        generate(data, patients=args.patients, seed=0)
    records, report = load_records(data, languages=("en",))
    examples = decode([r for r in records if r.split == "train"], get_preset("tiny").image_size, report)
    device, train = torch.device("cpu"), TrainConfig(batch_size=args.batch_size)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
           "torch_threads": torch.get_num_threads(), "records": len(examples.records), "batch_size": args.batch_size}
    for objective in ("contrastive", "report-generation"):
        n = len(examples.records)
        steps, _ = planned_steps(n, batch_size=args.batch_size, epochs=1)
        plain, private = [], []
        for r in range(args.repeats):
            model = build_model(get_preset("tiny"))
            start = time.perf_counter()
            local_update(model, examples, objective, train=train, epochs=1, seed=r, device=device)
            plain.append((time.perf_counter() - start) / -(-n // args.batch_size))
            model = build_model(get_preset("tiny"))
            start = time.perf_counter()
            result = private_update(model, examples, objective, train=train, epochs=1, seed=r, device=device,
                                    noise_multiplier=1.0, max_grad_norm=1.0, batch_size=args.batch_size,
                                    unit="record", public_texts=public_texts())
            private.append((time.perf_counter() - start) / result.steps)
        out[objective] = {"plain_s_per_step": statistics.median(plain), "dp_s_per_step": statistics.median(private),
                          "ratio_dp_over_plain": statistics.median(private) / statistics.median(plain),
                          "dp_steps": steps}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
