"""DP-SGD step time against the plain step, side by side in one run, both objectives.

The same site data, batch size, epochs and model (``tiny``): ``client.app.site.local_update`` (plain)
against ``privacy.dp.private_update`` (Opacus per-sample gradients, clipping, noise, Poisson
sampling; record-level, public-negative contrastive loss), once with the layers a default policy
trains (``PrivacyPolicy.layers``: each module's ``top_layers()`` by default) and once with every
layer; for report generation also with each Poisson sample as one physical batch
(``physical_rows=0``, the path before length-sorted physical batches). Seconds per step of
``--batch-size`` examples, median of ``--repeats`` alternating runs: plain, the epoch's time ×
batch / N (its last batch is partial); DP, the time per step (a Poisson sample of ``batch``
examples expected).

    python bench/dp_bench.py [--data DIR] [--patients 200] [--repeats 3] [--adapter lora:8]

``--adapter``: both sides train LoRA adapters and heads on a frozen start (``shared_model.adapters``).
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

from client.app.site import local_update
from client.app.site_privacy import public_texts
from client.data.dataset import decode
from client.data.sources import load_records
from privacy.dp import private_update
from privacy.policy import PrivacyPolicy
from privacy.sampling import PHYSICAL_ROWS, planned_steps, privacy_units
from shared_model.config import get_preset
from shared_model.checkpoint import ModelSource
from shared_model.objectives import TrainConfig
from sim.synth import generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--adapter", default="", help="lora:R: the adapter path (plain and DP)")
    args = parser.parse_args()
    data = Path(args.data or tempfile.mkdtemp()) if args.data else Path(tempfile.mkdtemp()) / "d"
    if not (data / "m3fed-synth.json").is_file():
        generate(data, patients=args.patients, seed=0)
    records, report = load_records(data, languages=("en",))
    examples = decode([r for r in records if r.split == "train"], get_preset("tiny").image_size, report)
    device, train = torch.device("cpu"), TrainConfig(batch_size=args.batch_size)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
           "torch_threads": torch.get_num_threads(), "records": len(examples.records), "batch_size": args.batch_size,
           "adapter": args.adapter or None}

    def fresh():
        return ModelSource(adapter=args.adapter).initial(seed=0)

    policy = PrivacyPolicy(unit="record", target_epsilon=8.0, target_delta=1e-6, max_grad_norm=1.0,
                           noise_multiplier=1.0)  # the defaults: only which layers train is read here
    for objective in ("contrastive", "report-generation"):
        n = len(privacy_units(examples, objective, unit="record"))  # what the objective trains on
        steps, _ = planned_steps(n, batch_size=args.batch_size, epochs=1)
        variants = [("dp_default", policy.layers(objective), PHYSICAL_ROWS), ("dp_all_layers", "all", PHYSICAL_ROWS)]
        if objective == "report-generation":  # contrastive samples are never split (images have one size)
            variants.append(("dp_whole_samples", policy.layers(objective), 0))
        runs = {"plain": [], **{key: [] for key, _, _ in variants}}
        for r in range(args.repeats):
            model = fresh()
            start = time.perf_counter()
            local_update(model, examples, objective, train=train, epochs=1, seed=r, device=device)
            runs["plain"].append((time.perf_counter() - start) * args.batch_size / n)
            for key, layers, physical_rows in variants:
                model = fresh()
                start = time.perf_counter()
                result = private_update(model, examples, objective, train=train, epochs=1, seed=r, device=device,
                                        noise_multiplier=1.0, max_grad_norm=1.0, batch_size=args.batch_size,
                                        unit="record", public_texts=public_texts(), layers=layers,
                                        physical_rows=physical_rows)
                runs[key].append((time.perf_counter() - start) / result.steps)
        med = {key: statistics.median(values) for key, values in runs.items()}
        out[objective] = {"plain_s_per_step": med["plain"], "default_layers": policy.layers(objective),
                          "dp_s_per_step": med["dp_default"], "ratio_dp_over_plain": med["dp_default"] / med["plain"],
                          "dp_all_layers_s_per_step": med["dp_all_layers"],
                          "ratio_dp_all_layers_over_plain": med["dp_all_layers"] / med["plain"], "dp_steps": steps,
                          "examples": n}
        if "dp_whole_samples" in med:
            out[objective] |= {"dp_whole_samples_s_per_step": med["dp_whole_samples"],
                               "ratio_dp_whole_samples_over_plain": med["dp_whole_samples"] / med["plain"],
                               "physical_rows": PHYSICAL_ROWS}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
