"""``m3fed finetune``: adapt a model to one site's labels and score it on the site's test split."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client.finetune.config import TUNES, FinetuneConfig

# torch-heavy modules are imported in the handler, so that `m3fed --help` and a bad value answer at once.


def add_finetune_command(sub: argparse._SubParsersAction) -> None:
    defaults = FinetuneConfig(model="random", data="", out="")
    p = sub.add_parser("finetune", help="fine-tune a model on a fraction of one site's labels (M3FM's "
                                        "label-efficiency protocol; a site's personalisation)")
    p.add_argument("--model", required=True, metavar="RUNDIR|CKPT|random",
                   help="a run directory (its model-merged.safetensors or model.safetensors), an m3fed checkpoint, "
                        "or 'random' (weights of --preset drawn from --seed: the from-scratch comparison)")
    p.add_argument("--data", required=True, help="the site's dataset (MIMIC-CXR tree, manifest file or folder): "
                                                 "its train split is sampled, its test split scores")
    p.add_argument("--label-fraction", type=float, default=defaults.label_fraction, metavar="F",
                   help="fraction in (0, 1] of the site's training patients whose records are used (seeded)")
    p.add_argument("--out", required=True, help="run directory: model.safetensors (report generation tuned), "
                                                "classifier.safetensors, config.json, results.json")
    p.add_argument("--seed", type=int, default=defaults.seed, help="the patient sample, batches, random weights")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="classifier epochs over the sampled images")
    p.add_argument("--min-steps", type=int, default=defaults.min_steps,
                   help="at least this many classifier updates, whatever the sample size")
    p.add_argument("--lm-epochs", type=int, default=defaults.lm_epochs,
                   help="report-generation epochs over the sampled reports (0: the start's decoder is kept)")
    p.add_argument("--tune", default=defaults.tune, choices=TUNES,
                   help="what trains under the findings head: head only, the image tower's top block too "
                        "(default), or the whole image tower")
    p.add_argument("--findings", nargs="+", default=list(defaults.findings), metavar="FINDING",
                   help="CheXpert findings of the head (those the training images hold both classes of)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr, help="classifier learning rate")
    p.add_argument("--lm-lr", type=float, default=defaults.lm_lr, help="report-generation learning rate")
    p.add_argument("--no-reports", action="store_true", help="the classifier only: no report fine-tuning or scoring")
    p.add_argument("--preset", default=defaults.preset, choices=("tiny", "paper"), help="architecture of --model random")
    p.add_argument("--device", default=defaults.device, help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--beams", type=int, default=defaults.num_beams, help="1 = greedy decoding")
    p.add_argument("--image-cache", metavar="DIR", help="the decoded-image store (default: $M3FED_HOME/decoded)")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="processes decoding images (default: every core)")
    p.set_defaults(func=_finetune)


def _finetune(args: argparse.Namespace) -> int:
    try:
        cfg = FinetuneConfig(model=args.model, data=args.data, out=args.out, label_fraction=args.label_fraction,
                             seed=args.seed, epochs=args.epochs, min_steps=args.min_steps, lm_epochs=args.lm_epochs,
                             tune=args.tune, findings=tuple(args.findings), batch_size=args.batch_size, lr=args.lr,
                             lm_lr=args.lm_lr, reports=not args.no_reports, preset=args.preset, device=args.device,
                             num_beams=args.beams, image_cache=args.image_cache or "", workers=args.workers)
        from shared_model.device import resolve_device

        resolve_device(cfg.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    from client.finetune.run import run_finetune
    from client.finetune.summary import print_finetune

    console = Console()
    results = run_finetune(cfg, console)
    print_finetune(console, results)
    console.print(f"results: {Path(cfg.out) / 'results.json'}")
    return 0
