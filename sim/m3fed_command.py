"""The ``m3fed`` command: one dispatcher over the packages' subcommands.

User mistakes (bad paths, bad data, bad config values, foreign checkpoints) end with one
``error: ...`` line and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from client.admin.data_cli import add_data_commands
from client.admin.site_cli import add_site_commands
from client.audit.cli import add_audit_commands
from client.errors import DataError
from client.finetune.cli import add_finetune_command
from client.inference.cli import add_inference_commands
from privacy.cli import add_privacy_commands
from privacy.policy import PolicyError
from server.cli import add_server_commands
from server.model_card import add_card_command
from shared_model.errors import CheckpointError


class UsageError(Exception):
    """A command-line value that cannot work, said plainly."""


def _synth(args: argparse.Namespace) -> int:
    from sim.synth import generate

    if not 0.0 <= args.difficulty <= 1.0:
        raise UsageError(f"--difficulty must be in [0, 1], got {args.difficulty}")
    if args.patients < 3:
        raise UsageError(f"--patients must be at least 3 (one per split), got {args.patients}")
    summary = generate(Path(args.out), patients=args.patients, seed=args.seed, dicom=args.dicom,
                       difficulty=args.difficulty, style=args.style)
    print(f"wrote {summary['total_images']} images of {summary['total_studies']} studies "
          f"({summary['patients']['total']} patients) to {args.out}")
    return 0


def _central(args: argparse.Namespace) -> int:
    from rich.console import Console

    from shared_model.device import resolve_device
    from sim.central import run_central
    from sim.central_config import CentralConfig
    from sim.summary import print_final, selection_line

    try:
        cfg = CentralConfig(data=args.data, out=args.out, preset=args.preset, seed=args.seed, device=args.device,
                            contrastive_epochs=args.contrastive_epochs, lm_epochs=args.lm_epochs,
                            num_beams=args.beams, languages=tuple(args.languages), init=args.init,
                            vit_weights=args.vit_weights, text_model=args.text_model, adapter=args.adapter,
                            select=args.select, patience=args.patience, image_cache=args.image_cache or "",
                            workers=args.workers)
        resolve_device(cfg.device)
        cfg.model_source()  # every named file checked before the data is read
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    console = Console()
    final = run_central(cfg, console)
    print_final(console, final, title=f"pooled baseline ({args.preset})")
    results = json.loads((Path(args.out) / "results.json").read_text(encoding="utf-8"))
    console.print(selection_line(results.get("selected"), unit="epoch"))
    console.print(f"results: {Path(args.out) / 'results.json'}")
    return 0


def _sim(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sim.simulate import SimConfig, resume_config, run_simulation

    console = Console()
    if args.resume:
        cfg = resume_config(args.resume, rounds=args.rounds)
    else:
        default_data = args.data is None
        args.data = str(Path(args.out) / "data") if default_data else args.data
        try:
            cfg = SimConfig(data=args.data, out=args.out, sites=args.sites,
                            rounds=SimConfig.rounds if args.rounds is None else args.rounds,
                            partition=args.partition, languages=tuple(args.languages), seed=args.seed,
                            local_epochs=args.local_epochs,
                            lm_local_epochs=args.lm_local_epochs, text_only_sites=args.text_only_sites,
                            batch_size=args.batch_size, lm_batch_size=args.lm_batch_size,
                            keep_optimizer=not args.fresh_optimizer, drop_sites=args.drop_sites, strategy=args.strategy, schedule=args.schedule,
                            proximal_mu=args.proximal_mu, server_lr=args.server_lr,
                            min_live_sites=args.min_live_sites or 1, client_eval_every=args.client_eval_every,
                            compare=not args.no_compare, dp=args.dp, secagg=args.secagg,
                            secagg_threshold=args.secagg_threshold, secagg_timeout=args.secagg_timeout,
                            secagg_shares=args.secagg_shares,
                            site_dp=args.site_dp, site_dp_clip=args.site_dp_clip, site_dp_delta=args.site_dp_delta,
                            site_dp_max_epsilon=args.site_dp_max_epsilon, init=args.init,
                            text_model=args.text_model, vit_weights=args.vit_weights, adapter=args.adapter,
                            update_dtype=args.update_dtype, select=args.select, patience=args.patience,
                            dp_sites=args.dp_sites, aggregation=args.aggregation, max_update_rms=args.max_update_rms,
                            poison_sites=args.poison_sites, poison=args.poison, preset=args.preset,
                            device=args.device, cpus_per_site=args.cpus_per_site, gpus_per_site=args.gpus_per_site,
                            max_records_per_site=args.max_records_per_site, ray_address=args.ray_address,
                            image_cache=args.image_cache or "", workers=args.workers,
                            personalise=args.personalise)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        from client.data.store_build import check_store

        check_store(cfg.store()[0])
        if default_data and not (Path(args.data) / "m3fed-synth.json").is_file():  # settings checked first
            from sim.synth import generate

            with console.status(f"writing the default synthetic dataset to {args.data}"):
                generate(Path(args.data), seed=args.seed)
    results = run_simulation(cfg, resume=bool(args.resume), console=console)
    _print_comparison(console, results)
    console.print(f"results: {Path(cfg.out) / 'results.json'} · report: {Path(cfg.out) / 'report.md'}")
    return 0


def _print_comparison(console, results: dict) -> None:
    from rich.table import Table

    from server.report import bleu_of, comparison_rows, difference_text
    from sim.summary import selection_line

    rows = comparison_rows(results)
    langs = sorted({lang for _, m in rows for lang in (m.get("bleu") or {})})
    table = Table(title="federated vs pooled vs best single site (same test split)")
    columns = ["model", "macro AUC", "fed − this (95% CI)", *[f"BLEU-4 {lang}" for lang in langs], "seconds"]
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    fmt = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
    for label, m in rows:
        table.add_row(label, fmt(m["auc_macro"]), difference_text(m), *[fmt(bleu_of(m, lang)) for lang in langs],
                      fmt(m.get("seconds"), 0))
    console.print(table)
    console.print("federated " + selection_line(results.get("selected"), unit="round"))
    if results.get("personalised"):
        from client.finetune.summary import print_personalised

        print_personalised(console, results["personalised"])
    if results.get("early_stopped"):
        console.print(f"early stopping: {results['early_stopped']}")
    if results.get("stopped"):
        console.print(f"[yellow]run stopped early: {results['stopped']}[/]")


def build_parser() -> argparse.ArgumentParser:
    from client.app.faults import POISONS
    from sim.central_config import CentralConfig
    from sim.sim_config import SimConfig
    from sim.synth import DEFAULT_DIFFICULTY, DEFAULT_PATIENTS

    parser = argparse.ArgumentParser(prog="m3fed", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic MIMIC-CXR-shaped dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dicom", action="store_true", help="write DICOM instead of JPEG images")
    p.add_argument("--difficulty", type=float, default=DEFAULT_DIFFICULTY,
                   help="0 (obvious findings) .. 1 (faint findings, more noise)")
    p.add_argument("--style", default="private", choices=("private", "public"),
                   help="public: a cohort for a pretrained start, apart from the private sites: other patients "
                        "(ids disjoint from a private cohort's) and another hospital's acquisition (flatter, "
                        "brighter exposure, collimation border, coarser grain); give it another --seed too")
    p.set_defaults(func=_synth)

    add_data_commands(sub)
    add_privacy_commands(sub)
    add_server_commands(sub)
    add_site_commands(sub)
    add_finetune_command(sub)
    add_card_command(sub)
    add_inference_commands(sub)
    add_audit_commands(sub)

    defaults = CentralConfig(data="", out="")
    p = sub.add_parser("central", help="pooled baseline: train both objectives on pooled data")
    p.add_argument("--data", required=True, help="MIMIC-CXR tree, manifest file, or folder with a manifest")
    p.add_argument("--out", required=True, help="run directory (results.json, config.json, model.safetensors)")
    p.add_argument("--preset", default=defaults.preset, choices=("tiny", "paper"))
    p.add_argument("--contrastive-epochs", type=int, default=defaults.contrastive_epochs)
    p.add_argument("--lm-epochs", type=int, default=defaults.lm_epochs)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device, help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--beams", type=int, default=defaults.num_beams, help="1 = greedy decoding")
    p.add_argument("--languages", nargs="+", default=list(defaults.languages), choices=("en", "zh"))
    p.add_argument("--init", help="m3fed checkpoint (.safetensors) to start from; nothing is downloaded")
    _model_arguments(p)
    selection_arguments(p, defaults, unit="epoch")
    _store_arguments(p)
    p.set_defaults(func=_central)

    sim_defaults = SimConfig(data="", out="")
    p = sub.add_parser("sim", help="simulated federation of virtual hospitals on Flower's simulation runtime")
    p.add_argument("--data", help="dataset (default: the synthetic dataset, generated under --out)")
    p.add_argument("--out", default="runs/sim")
    p.add_argument("--sites", type=int, default=sim_defaults.sites)
    p.add_argument("--rounds", type=int, default=None,
                   help=f"rounds (default {sim_defaults.rounds}; with --resume: continue to this many rounds)")
    p.add_argument("--partition", default=sim_defaults.partition,
                   help="iid, view, dirichlet:ALPHA (label skew) or size:ALPHA (size skew)")
    p.add_argument("--languages", nargs="+", default=list(sim_defaults.languages),
                   help="report language per site, cycled")
    p.add_argument("--text-only-sites", type=int, default=sim_defaults.text_only_sites)
    p.add_argument("--local-epochs", type=int, default=sim_defaults.local_epochs,
                   help="local epochs per round (contrastive rounds)")
    p.add_argument("--lm-local-epochs", type=int, default=sim_defaults.lm_local_epochs,
                   help="local epochs of report-generation rounds (0: same as --local-epochs)")
    p.add_argument("--batch-size", type=int, default=sim_defaults.batch_size)
    p.add_argument("--lm-batch-size", type=int, default=sim_defaults.lm_batch_size,
                   help="batch size of report-generation updates")
    p.add_argument("--fresh-optimizer", action="store_true",
                   help="a fresh AdamW at every site every round (default: each site keeps its own across rounds)")
    p.add_argument("--schedule", default=sim_defaults.schedule,
                   help="alternate, staged:K (K contrastive rounds, then report generation), contrastive, "
                        "report-generation")
    p.add_argument("--strategy", default=sim_defaults.strategy, help="fedavg, fedprox or fedadam")
    p.add_argument("--proximal-mu", type=float, default=sim_defaults.proximal_mu, help="FedProx's mu")
    p.add_argument("--server-lr", type=float, default=sim_defaults.server_lr, help="FedAdam's server learning rate")
    p.add_argument("--min-live-sites", type=int, default=None,
                   help="end the run when fewer sites than this answer a round (default 1)")
    p.add_argument("--client-eval-every", type=int, default=sim_defaults.client_eval_every,
                   help="sites evaluate locally every N rounds (0: final round only)")
    p.add_argument("--no-compare", action="store_true", help="skip the pooled and single-site baselines")
    p.add_argument("--personalise", action="store_true",
                   help="after the federation each image site fine-tunes the global model on its own training "
                        "records (m3fed finetune); its AUC is reported beside the global model's on its test patients")
    p.add_argument("--dp", metavar="POLICY.yaml",
                   help="DP-SGD at every site under this privacy policy (ledger per site; with comparison, "
                        "the same federation without DP is also run to show the accuracy cost)")
    p.add_argument("--dp-sites", type=int, default=None, metavar="N",
                   help="with --dp: only the first N sites train under the policy, the others without DP (ε null)")
    p.add_argument("--secagg", action="store_true",
                   help="Flower's SecAgg+ on the sites' updates: the server sees only their weighted sum")
    p.add_argument("--secagg-threshold", type=float, default=sim_defaults.secagg_threshold,
                   help="SecAgg+ reconstruction threshold: a count (>1) or a fraction of the shares")
    p.add_argument("--secagg-shares", type=float, default=sim_defaults.secagg_shares,
                   help="SecAgg+ num_shares: with how many sites each site shares its secrets, a count (>1) or "
                        "a fraction of the round's sites (1.0: all; fewer is faster, and fewer sites colluding "
                        "with the server can unmask a site)")
    p.add_argument("--secagg-timeout", type=float, default=sim_defaults.secagg_timeout,
                   help="seconds each SecAgg+ stage waits for the sites")
    p.add_argument("--site-dp", type=float, default=0.0, metavar="Z",
                   help="site-level DP (each hospital the protected unit): noise multiplier Z on the mean of "
                        "clipped site updates, Flower's RDP accountant (0: off)")
    p.add_argument("--site-dp-clip", type=float, default=sim_defaults.site_dp_clip,
                   help="L2 norm each site's update is clipped to")
    p.add_argument("--site-dp-delta", type=float, default=sim_defaults.site_dp_delta)
    p.add_argument("--site-dp-max-epsilon", type=float, default=0.0,
                   help="stop the run before a round would take site-level ε above this (0: no limit)")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="m3fed checkpoint (.safetensors, e.g. `m3fed central` on public data) the federation and "
                        "its pooled and single-site baselines start from (default: weights drawn from --seed)")
    _model_arguments(p)
    selection_arguments(p, sim_defaults, unit="round")
    p.add_argument("--update-dtype", default=sim_defaults.update_dtype, choices=("fp32", "fp16", "int8"),
                   help="what a site sends: fp32 weights, or its change as fp16 or int8 with a per-tensor scale "
                        "(not with --secagg, which quantises itself)")
    p.add_argument("--drop-sites", type=int, default=0,
                   help="K sites die in the middle of a round (from the middle round on), chosen from --seed")
    p.add_argument("--poison-sites", type=int, default=0, metavar="K",
                   help="K sites, chosen from --seed, send a bad reply (--poison) from the middle round on")
    p.add_argument("--poison", default=sim_defaults.poison, choices=POISONS,
                   help="nan/inf: non-finite values; scale: update x1e6; shape: a tensor of the wrong shape; "
                        "weight: num-examples 1e9")
    p.add_argument("--aggregation", default=sim_defaults.aggregation,
                   help="fedavg, median, trimmed:B, krum:F, multikrum:F or bulyan:F (Flower's; F faulty sites)")
    p.add_argument("--max-update-rms", type=float, default=sim_defaults.max_update_rms,
                   help="reject a reply whose update norm is above this x sqrt(trained values) (0: no bound)")
    p.add_argument("--seed", type=int, default=sim_defaults.seed)
    _scale_arguments(p, sim_defaults)
    _store_arguments(p)
    p.add_argument("--resume", metavar="RUNDIR", help="continue an interrupted run after its last completed round "
                                                            "(with --rounds R: also a finished one, to R rounds)")
    p.set_defaults(func=_sim)
    return parser


def _store_arguments(p: argparse.ArgumentParser) -> None:
    """The decoded-image store (client.data.image_store), for central and sim."""
    p.add_argument("--image-cache", metavar="DIR",
                   help="the decoded-image store: each image is decoded once, later runs map it from disk "
                        "(default: $M3FED_HOME/decoded, ~/.m3fed/decoded)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="processes decoding images the store lacks (default: every core)")


def _scale_arguments(p: argparse.ArgumentParser, defaults) -> None:
    """The model's size and where the virtual sites train (sim.resources)."""
    from sim.resources import DEVICES

    p.add_argument("--preset", default=defaults.preset, choices=("tiny", "paper"))
    p.add_argument("--device", default=defaults.device, choices=DEVICES,
                   help="auto: the GPU when the machine has one (bf16 autocast where supported), else the CPU")
    p.add_argument("--cpus-per-site", type=int, default=defaults.cpus_per_site, metavar="N",
                   help="cores Ray gives each virtual site (sites at once: cores / N; default: all, one at a time)")
    p.add_argument("--gpus-per-site", type=float, default=None, metavar="F",
                   help="GPU share Ray gives each virtual site, e.g. 0.25 = four sites on one GPU (default: on a "
                        "GPU machine, an equal share for the sites that run at once; else 0)")
    p.add_argument("--ray-address", default="", metavar="HOST:PORT",
                   help="run the virtual sites on an existing Ray cluster (its head: `ray start --head`); every "
                        "node needs this installation and the data at the same paths (default: a Ray of its own)")
    p.add_argument("--max-records-per-site", type=int, default=0, metavar="N",
                   help="a quick look at a big dataset: N training (and test) records per site, and N x sites "
                        "records of the validate and test splits for the server's evaluation (0: all)")


def _model_arguments(p: argparse.ArgumentParser) -> None:
    """Where the model comes from, beside --init: local files only, nothing is downloaded."""
    p.add_argument("--vit-weights", help="local timm ViT weights (.safetensors/.pth) for the image tower")
    p.add_argument("--text-model", metavar="DIR",
                   help="a local Hugging Face encoder directory (config, weights and its own tokenizer, e.g. a "
                        "multilingual BERT): the text tower, and the tokenizer of the text tower and MultiMedLM")
    p.add_argument("--adapter", default="", metavar="lora:R",
                   help="train and send only rank-R LoRA adapters (peft) and the heads; the start stays frozen")


def selection_arguments(p: argparse.ArgumentParser, defaults, *, unit: str) -> None:
    """--select and --patience (shared_model.selection), for central, sim and run."""
    from shared_model.selection import SELECT_METRICS

    p.add_argument("--select", default=defaults.select, choices=SELECT_METRICS,
                   help=f"model selection on the validate split, per stage (contrastive {unit}s, then report "
                        f"generation): auto = macro AUC, then BLEU-4; auc or bleu4 for every stage; last = no "
                        f"selection (the last {unit})")
    p.add_argument("--patience", type=int, default=defaults.patience, metavar="N",
                   help=f"early stopping: a stage ends after N {unit}s without a better validation score "
                        f"(0: never)")


def _terminate(signum, _frame) -> None:
    # SIGTERM becomes an ordinary exit, so `finally` blocks stop the Flower processes we started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    signal.signal(signal.SIGTERM, _terminate)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, CheckpointError, UsageError, PolicyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
