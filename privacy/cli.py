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


def plan(*, policy_path: str, dataset_size: int, rounds: int | None, local_steps: int) -> dict:
    """Projected ε round by round before any training, with the policy's σ or one calibrated to it.

    ``rounds`` None: the policy's ``planned_rounds``. A σ above ``max_noise_multiplier`` or a round
    adding more than ``max_epsilon_per_round`` is one the site would refuse: the plan does not fit.
    """
    from privacy.accounting import accountant_version, affordable_steps, calibrate_noise, epsilon
    from privacy.policy import check_delta, load_policy

    policy = load_policy(policy_path)
    rounds = policy.planned_rounds if rounds is None else rounds
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
    refused = []  # what the site's own pace refuses, even within the target
    if sigma > policy.max_noise_multiplier:
        refused.append(f"σ = {sigma:g} is above max_noise_multiplier {policy.max_noise_multiplier:g}: the site "
                       "refuses these rounds rather than train on noise")
    cap = policy.max_epsilon_per_round
    if cap is not None and not calibrated:
        steps_up = [0.0] + [row["epsilon"] for row in projection]
        over = [r for r in range(1, rounds + 1) if steps_up[r] - steps_up[r - 1] > cap]
        if over:
            refused.append(f"round {over[0]} would add more than max_epsilon_per_round {cap:g}")
    return {"policy": str(policy_path), "unit": policy.unit, "dataset_size": dataset_size,
            "batch_size": policy.batch_size, "sample_rate": q, "noise_multiplier": sigma,
            "noise_source": "calibrated to the target over all planned steps" if calibrated else "policy",
            "max_grad_norm": policy.max_grad_norm, "rounds": rounds, "local_steps": local_steps,
            "total_steps": total, "target_epsilon": policy.target_epsilon, "delta": policy.target_delta,
            "accountant": policy.accountant, "accountant_version": accountant_version(policy.accountant),
            "projection": projection, "affordable_rounds": fits, "within_target": fits == rounds and not refused,
            "max_noise_multiplier": policy.max_noise_multiplier, "max_epsilon_per_round": cap, "refused": refused,
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
        for reason in p["refused"]:
            print(f"refused at the site: {reason}")
        if p["affordable_rounds"] == p["rounds"]:
            print(f"all {p['rounds']} rounds fit within ε = {p['target_epsilon']:g}")
        else:
            print(f"only {p['affordable_rounds']} of {p['rounds']} rounds fit within ε = {p['target_epsilon']:g}")
    return 0 if p["within_target"] else 1


def _report(args: argparse.Namespace) -> int:
    from privacy.ledger import Ledger
    from privacy.statement import privacy_statement, render_markdown

    statement = privacy_statement(Ledger(args.ledger))
    sys.stdout.write(json.dumps(statement, indent=2, ensure_ascii=False) + "\n" if args.json
                     else render_markdown(statement))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from privacy.ledger import SIGNING_KEY, Ledger, read_lines, verify_ledger
    from privacy.ledger_head import head_path, head_problems, read_head

    path = Path(args.ledger)
    head_file = Path(args.head) if args.head else head_path(path)
    problems = verify_ledger(path, head=head_file)
    lines = read_lines(path)
    checked = ["the hash chain of every entry (edited, inserted, removed or reordered lines)",
               "each entry's ε, replayed from the history before it"]
    head = read_head(head_file)
    if head is not None:
        checked.append(f"its signed head {head_file} (Ed25519): the ledger is as long as the site last signed")
    elif lines[0].get(SIGNING_KEY) is None:
        checked.append(f"no signed head ({head_file} absent; a ledger from before signed heads): a cut tail "
                       "cannot be detected from the file alone")
    if args.receipt:
        try:
            receipt = json.loads(Path(args.receipt).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LedgerError(f"{args.receipt}: cannot read the receipt ({exc})") from None
        problems += head_problems(lines, receipt, what=f"the server's receipt {args.receipt}",
                                  public_key=lines[0].get(SIGNING_KEY) or (head or {}).get("public_key"))
        checked.append(f"the server's receipt {args.receipt}: the ledger is as long as the server last saw it")
    if problems:
        print(f"{args.ledger}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
    else:
        ledger = Ledger(path)
        print(f"ok: {len(ledger.entries())} entries, ε={ledger.epsilon():.4f} at δ={ledger.policy.target_delta:g} "
              f"({ledger.policy.accountant})")
    print("checked: " + "; ".join(checked))
    return 1 if problems else 0


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
    p.add_argument("--rounds", type=int, help="rounds to plan (default: the policy's planned_rounds)")
    p.add_argument("--local-steps", type=int, required=True, help="DP-SGD steps per round")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_errors(_plan))
    p = cmds.add_parser("report", help="privacy statement from a site's ledger (Markdown, or JSON with --json)")
    p.add_argument("--ledger", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_user_errors(_report))
    p = cmds.add_parser("verify", help="check a ledger's hash chain, ε and signed head (a cut tail); exit 1 on any "
                                       "problem")
    p.add_argument("--ledger", required=True)
    p.add_argument("--head", help="the ledger's signed head (default: <ledger>.head.json beside it)")
    p.add_argument("--receipt", help="the server's receipt of this site's head (RUNDIR/receipts/<site>.json)")
    p.set_defaults(func=_user_errors(_verify))
