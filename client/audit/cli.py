"""``m3fed audit memorisation``: what the report generator memorises of a site's reports (canaries, regurgitation).

Every user mistake (a missing model, an unreadable dataset, a bad policy or value, a budget the
policy cannot pay) ends as one ``error: ...`` line and exit status 2, whatever the dispatcher catches.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from client.audit.config import AuditConfig

# torch-heavy modules are imported in the handler, so that `m3fed --help` and a bad value answer at once.


def add_audit_commands(sub: argparse._SubParsersAction) -> None:
    audit = sub.add_parser("audit", help="privacy officer's audits of a trained model").add_subparsers(
        dest="audit_command", required=True)
    d = AuditConfig(model="", data="")
    p = audit.add_parser("memorisation", help="Secret Sharer canaries and verbatim regurgitation of the report "
                                              "generator, trained on one site's reports with or without its DP policy")
    p.add_argument("--model", required=True, metavar="RUNDIR|CKPT",
                   help="a run directory (its model-merged.safetensors or model.safetensors) or an m3fed checkpoint")
    p.add_argument("--data", required=True, help="the site's dataset: its train split's reports are trained on with "
                                                 "the canaries, its test split conditions the generated reports")
    p.add_argument("--canaries", type=int, default=d.canaries, metavar="K",
                   help="canaries inserted (as many never inserted are the control group)")
    p.add_argument("--repeats", type=int, default=d.repeats,
                   help="training records per inserted canary, each its own patient and study")
    p.add_argument("--dp", metavar="POLICY.yaml",
                   help="train with the site's DP-SGD round under this policy; its whole target ε is spent on the "
                        "audit's one round (planned_rounds 1), recorded in OUT/ledger.jsonl")
    p.add_argument("--epochs", type=int, default=d.epochs, help="report-generation epochs")
    p.add_argument("--alternatives", type=int, default=d.alternatives, metavar="R",
                   help="random secrets each canary is ranked against (exposure is at most log2(R+1))")
    p.add_argument("--generate", type=int, default=d.generate, metavar="N",
                   help="held-out conditions per language whose generated report is checked (0: none)")
    p.add_argument("--out", help="folder for memorisation.json and config.json (default: RUNDIR/memorisation, "
                                 "or memorisation-dp with --dp)")
    p.add_argument("--seed", type=int, default=d.seed, help="canaries, alternatives, batches")
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--json", action="store_true", help="print memorisation.json instead of the tables")
    p.set_defaults(func=_memorisation)


def _memorisation(args: argparse.Namespace) -> int:
    from client.errors import DataError
    from privacy.accounting import AccountingError
    from privacy.ledger import LedgerError
    from privacy.policy import PolicyError
    from shared_model.errors import CheckpointError

    try:
        cfg = AuditConfig(model=args.model, data=args.data, out=args.out or "", canaries=args.canaries,
                          repeats=args.repeats, epochs=args.epochs, alternatives=args.alternatives,
                          generate=args.generate, dp=args.dp or "", seed=args.seed, device=args.device)
        from shared_model.device import resolve_device

        resolve_device(cfg.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from rich.console import Console

    from client.audit.memorisation import RESULT, run_audit
    from client.audit.summary import print_audit

    console = Console(stderr=args.json)
    try:
        result = run_audit(cfg, console)
    except (DataError, CheckpointError, PolicyError, LedgerError) as exc:  # each names its file and field
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AccountingError as exc:  # the policy cannot pay for the audit's round (budget, σ cap)
        print(f"error: {args.dp}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print_audit(console, result)
        console.print(f"written: {Path(result['config']['out']) / RESULT}")
    return 0
