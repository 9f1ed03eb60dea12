"""The hospital admin's commands: ``m3fed site keygen|check|start|systemd-unit`` and ``m3fed app hash``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared_model.app import APP_DIR


def _keygen(args) -> int:
    from client.admin.keys import site_keygen

    private, public = site_keygen(Path(args.out))
    print(f"wrote {private} (stays at this site, mode 600) and {public} (send it to the consortium operator)")
    return 0


def _checked(args):
    """Load and check site.yaml and the data; print what the site contributes. (config, training examples)"""
    from rich.console import Console

    from client.admin.site_config import inspect_site, load_site_config
    from client.data.sources import describe_left_out
    from shared_model.config import get_preset

    cfg = load_site_config(args.config)
    # Decoded into the site's store now, with a progress bar: its rounds then read instead of decoding.
    summary, train = inspect_site(cfg, image_size=get_preset(args.preset).image_size, store=True,
                                  console=Console(stderr=True))
    print(f"site {cfg.site}: {summary['records']} records ({summary['by_split']}), languages "
          f"{sorted(summary['by_language'])}, {summary['skipped']} skipped; "
          f"{'DP policy ' + str(cfg.privacy_policy) if cfg.privacy_policy else 'no DP policy'}; "
          f"{len(cfg.approved_apps)} approved app bundle(s)")
    scrub = summary["scrub"]
    print(f"reports scrubbed: {scrub['reports_changed']} of {scrub['reports']} had identifiers removed "
          f"({', '.join(f'{k} {v}' for k, v in scrub['by_category'].items()) or 'none found'})" if scrub["on"]
          else f"reports NOT scrubbed ({cfg.source}: scrub: off)")
    if summary["not_contributed"]["records"]:
        print(f"not contributed (site.yaml languages/modalities): {describe_left_out(summary['not_contributed'])}")
    for warning in summary["warnings"]:
        print(f"warning: {cfg.source}: {warning}")
    return cfg, train


def _check(args) -> int:
    cfg, train = _checked(args)
    from client.admin.site_plan import privacy_plan

    fits, lines = privacy_plan(cfg, train, rounds=args.rounds, local_epochs=args.local_epochs,
                               schedule=args.schedule, joining=False)
    for line in lines:
        print(line)
    if not fits:
        print(f"error: site configuration not OK: the privacy policy {cfg.privacy_policy} fits no round of the "
              "schedule (see above)", file=sys.stderr)
        return 1
    print("site configuration OK")
    return 0


def _start(args) -> int:
    from client.admin.daemon import run_site
    from client.admin.site_plan import privacy_plan

    cfg, train = _checked(args)
    _, lines = privacy_plan(cfg, train, rounds=None, local_epochs=None, joining=True)  # warns; it may still join
    for line in lines:
        print(line)
    return run_site(cfg)


def _unit(args) -> int:
    from client.admin.daemon import systemd_unit
    from client.admin.site_config import load_site_config

    print(systemd_unit(Path(args.config), load_site_config(args.config), user=args.user), end="")
    return 0


def _hash(args) -> int:
    from client.admin.daemon import app_hash

    print(app_hash(args.app))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _schedule(text: str) -> str:
    from shared_model.schedule import check_schedule

    try:
        return check_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_site_commands(sub: argparse._SubParsersAction) -> None:
    site = sub.add_parser("site", help="run and check a hospital site").add_subparsers(dest="site_command",
                                                                                        required=True)
    p = site.add_parser("keygen", help="the site's SuperNode key pair (private key never leaves the site)")
    p.add_argument("--out", required=True, help="private key path; the public key is written next to it (.pub)")
    p.set_defaults(func=_keygen)
    for name, func, text in (("check", _check, "validate site.yaml, keys, policy and data without connecting"),
                             ("start", _start, "validate, then run the SuperNode and the app-approval guard")):
        p = site.add_parser(name, help=text)
        p.add_argument("--config", required=True, help="site.yaml")
        p.add_argument("--preset", default="tiny", choices=("tiny", "paper"), help="image size for the data check")
        p.set_defaults(func=func)
        if name == "check":  # the schedule the consortium announced, planned against the privacy policy
            p.add_argument("--rounds", type=_positive, metavar="R",
                           help="rounds the consortium announced, planned against the privacy policy (default: "
                                "the policy's planned_rounds less the rounds its ledger has charged)")
            p.add_argument("--local-epochs", type=_positive, metavar="E",
                           help="local epochs per round the consortium announced (default: the app's local-epochs)")
            p.add_argument("--schedule", type=_schedule, metavar="S",
                           help="the schedule the consortium announced: alternate, contrastive, "
                                "report-generation or staged:K (default: the app's schedule)")
    p = site.add_parser("systemd-unit", help="print a systemd unit that runs this site")
    p.add_argument("--config", required=True)
    p.add_argument("--user", default="m3fed")
    p.set_defaults(func=_unit)

    app = sub.add_parser("app", help="app bundles").add_subparsers(dest="app_command", required=True)
    p = app.add_parser("hash", help="sha256 of the app bundle flwr builds from a folder (for approved_apps)")
    p.add_argument("--app", default=str(APP_DIR))
    p.set_defaults(func=_hash)
