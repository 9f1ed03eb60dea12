"""``m3fed privacy epsilon | plan | report | verify``: what a site's privacy officer runs.

Wire in with ``add_privacy_commands(subparsers)``; every handler turns a user mistake (bad policy,
foreign or damaged ledger, impossible numbers) into one ``error: ...`` line and exit status 2 by
itself, so no traceback reaches the user whatever the dispatcher catches.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable

from privacy.accounting import ACCOUNTANTS, AccountingError
from privacy.ledger import LedgerError
from privacy.policy import PolicyError

DP = "(ε, δ)-DP, add/remove-one, Poisson sampling"


def _user_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (PolicyError, LedgerError, AccountingError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def _epsilon(args: argparse.Namespace) -> int:
    from privacy.accounting import accountant_version, epsilon

    eps = epsilon([(args.noise_multiplier, args.sample_rate, args.steps)], delta=args.delta,
                  accountant=args.accountant)
    if args.json:
        print(json.dumps({"epsilon": eps, "delta": args.delta, "sample_rate": args.sample_rate,
                          "noise_multiplier": args.noise_multiplier, "steps": args.steps,
                          "accountant": args.accountant, "accountant_version": accountant_version(args.accountant)}))
    else:
        print(f"ε = {eps:.4f} at δ = {args.delta:g} after {args.steps} steps with q = {args.sample_rate:g}, "
              f"σ = {args.noise_multiplier:g} ({DP}; {accountant_version(args.accountant)})")
    return 0


def plan(*, policy_path: str, dataset_size: int, rounds: int, local_steps: int) -> dict:
    """Projected ε round by round before any training, with the policy's σ or one calibrated to it."""
    from privacy.accounting import accountant_version, affordable_steps, calibrate_noise, epsilon
    from privacy.policy import check_delta, load_policy

    policy = load_policy(policy_path)
    check_delta(policy, dataset_size)
    for name, value in (("rounds", rounds), ("local steps", local_steps)):
        if value < 1:
            raise AccountingError(f"{name} must be at least 1, got {value}")
    if policy.batch_size > dataset_size:
        raise PolicyError(policy.source, "batch_size", f"{policy.batch_size} is larger than the dataset "
                                                       f"({dataset_size} {policy.unit}s)")
    q, total = policy.batch_size / dataset_size, rounds * local_steps
    common = {"delta": policy.target_delta, "accountant": policy.accountant}
    calibrated = policy.noise_multiplier == "calibrate"
    sigma = (calibrate_noise(target_epsilon=policy.target_epsilon, sample_rate=q, steps=total, **common)
             if calibrated else policy.noise_multiplier)
    projection = [{"round": r, "steps": r * local_steps,
                   "epsilon": epsilon([(sigma, q, r * local_steps)], **common)} for r in range(1, rounds + 1)]
    fits = affordable_steps(target_epsilon=policy.target_epsilon, noise_multiplier=sigma, sample_rate=q,
                            multiple=local_steps, limit=total, **common) // local_steps
    return {"policy": str(policy_path), "unit": policy.unit, "dataset_size": dataset_size,
            "batch_size": policy.batch_size, "sample_rate": q, "noise_multiplier": sigma,
            "noise_source": "calibrated to the target over all planned steps" if calibrated else "policy",
            "max_grad_norm": policy.max_grad_norm, "rounds": rounds, "local_steps": local_steps,
            "total_steps": total, "target_epsilon": policy.target_epsilon, "delta": policy.target_delta,
            "accountant": policy.accountant, "accountant_version": accountant_version(policy.accountant),
            "projection": projection, "affordable_rounds": fits, "within_target": fits == rounds,
            "note": "q = batch_size/N; Opacus uses q = 1/len(loader), so record the loader's q in the ledger"}


def _plan(args: argparse.Namespace) -> int:
    p = plan(policy_path=args.policy, dataset_size=args.dataset_size, rounds=args.rounds,
             local_steps=args.local_steps)
    if args.json:
        print(json.dumps(p, indent=2, ensure_ascii=False))
    else:
        print(f"{p['unit']}-level plan: N = {p['dataset_size']}, q = {p['sample_rate']:.6g}, "
              f"σ = {p['noise_multiplier']:g} ({p['noise_source']}), C = {p['max_grad_norm']:g}, "
              f"{p['rounds']} rounds × {p['local_steps']} steps, δ = {p['delta']:g}, {p['accountant_version']}")
        for row in p["projection"]:
            mark = "" if row["epsilon"] <= p["target_epsilon"] else "  > target"
            print(f"  round {row['round']:>4}  steps {row['steps']:>7}  ε = {row['epsilon']:.4f}{mark}")
        print(f"all {p['rounds']} rounds fit within ε = {p['target_epsilon']:g}" if p["within_target"] else
              f"only {p['affordable_rounds']} of {p['rounds']} rounds fit within ε = {p['target_epsilon']:g}")
    return 0 if p["within_target"] else 1


def _report(args: argparse.Namespace) -> int:
    from privacy.ledger import Ledger
    from privacy.statement import privacy_statement, render_markdown

    statement = privacy_statement(Ledger(args.ledger))
    sys.stdout.write(json.dumps(statement, indent=2, ensure_ascii=False) + "\n" if args.json
                     else render_markdown(statement))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from privacy.ledger import Ledger, verify_ledger

    problems = verify_ledger(args.ledger)
    if problems:
        print(f"{args.ledger}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
        return 1
    ledger = Ledger(args.ledger)
    print(f"ok: {len(ledger.entries())} entries, ε={ledger.epsilon():.4f} at δ={ledger.policy.target_delta:g} "
          f"({ledger.policy.accountant})")
    return 0


def add_privacy_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``privacy epsilon|plan|report|verify`` to the ``m3fed`` subcommands; each sets ``func``."""
    privacy = sub.add_parser("privacy", help="DP budget: compute, plan, report and verify a site's ε")
    cmds = privacy.add_subparsers(dest="privacy_command", required=True)
    p = cmds.add_parser("epsilon", help="ε of Poisson-sampled DP-SGD for given q, σ, steps and δ")
    p.add_argument("--sample-rate", type=float, required=True, help="q (Opacus: 1/len(loader))")
    p.add_argument("--noise-multiplier", type=float, required=True, help="σ")
    p.add_argument("--steps", type=int, required=True, help="optimizer steps (an integer, not epochs)")
    p.add_argument("--delta", type=float, required=True)
    p.add_argument("--accountant", choices=ACCOUNTANTS, default="prv")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_errors(_epsilon))
    p = cmds.add_parser("plan", help="projected ε per round before training; exit 1 if the plan exceeds the target")
    p.add_argument("--policy", required=True, help="site privacy policy (YAML)")
    p.add_argument("--dataset-size", type=int, required=True, help="N in units of privacy (patients or records)")
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--local-steps", type=int, required=True, help="DP-SGD steps per round")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_errors(_plan))
    p = cmds.add_parser("report", help="privacy statement from a site's ledger (Markdown, or JSON with --json)")
    p.add_argument("--ledger", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_errors(_report))
    p = cmds.add_parser("verify", help="check a ledger's hash chain and replay its ε; exit 1 on any problem")
    p.add_argument("--ledger", required=True)
    p.set_defaults(func=_user_errors(_verify))
