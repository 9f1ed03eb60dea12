"""The hospital admin's commands: ``m3fed site keygen|check|start|systemd-unit`` and ``m3fed app hash``."""
from __future__ import annotations

import argparse
from pathlib import Path


def _keygen(args) -> int:
    from server.pki import site_keygen

    private, public = site_keygen(Path(args.out))
    print(f"wrote {private} (stays at this site, mode 600) and {public} (send it to the consortium operator)")
    return 0


def _checked(args):
    from client.site_config import check_site, load_site_config
    from shared_model.config import get_preset

    cfg = load_site_config(args.config)
    summary = check_site(cfg, image_size=get_preset(args.preset).image_size)
    print(f"site {cfg.site}: {summary['records']} records ({summary['by_split']}), languages "
          f"{sorted(summary['by_language'])}, {summary['skipped']} skipped; "
          f"{'DP policy ' + str(cfg.privacy_policy) if cfg.privacy_policy else 'no DP policy'}; "
          f"{len(cfg.approved_apps)} approved app bundle(s)")
    return cfg


def _check(args) -> int:
    cfg = _checked(args)
    warning = _privacy_warning(cfg, args.preset)
    if warning:
        print(f"warning: the privacy policy {cfg.privacy_policy} fits no round of its planned schedule, every "
              f"round would be refused: {warning}")
    print("site configuration OK")
    return 0


def _privacy_warning(cfg, preset: str) -> str | None:
    """Plan the policy's first round as a ClientApp would, with the run's default local epochs."""
    if not cfg.privacy_policy:
        return None
    import tomllib

    from client.site import site_examples
    from client.site_privacy import schedule_warning
    from privacy.policy import load_policy
    from server.strategy import local_epochs_for
    from shared_model.config import get_preset
    from sim.federation import APP_DIR

    app = APP_DIR / "pyproject.toml"
    if not app.is_file():  # an installed copy without the app's run config: nothing to plan with
        return None
    run = tomllib.loads(app.read_text(encoding="utf-8"))["tool"]["flwr"]["app"]["config"]
    epochs = {o: local_epochs_for(o, int(run["local-epochs"]), int(run["lm-local-epochs"]))
              for o in ("contrastive", "report-generation")}
    examples = site_examples(str(cfg.data), get_preset(preset).image_size, "train")
    return schedule_warning(load_policy(cfg.privacy_policy), examples, cfg.ledger, epochs=epochs)


def _start(args) -> int:
    from client.daemon import run_site

    return run_site(_checked(args))


def _unit(args) -> int:
    from client.daemon import systemd_unit
    from client.site_config import load_site_config

    print(systemd_unit(Path(args.config), load_site_config(args.config), user=args.user), end="")
    return 0


def _hash(args) -> int:
    from client.daemon import app_hash

    print(app_hash(args.app))
    return 0


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
    p = site.add_parser("systemd-unit", help="print a systemd unit that runs this site")
    p.add_argument("--config", required=True)
    p.add_argument("--user", default="m3fed")
    p.set_defaults(func=_unit)

    app = sub.add_parser("app", help="app bundles").add_subparsers(dest="app_command", required=True)
    p = app.add_parser("hash", help="sha256 of the app bundle flwr builds from a folder (for approved_apps)")
    p.add_argument("--app", default=str(Path(__file__).resolve().parent.parent))
    p.set_defaults(func=_hash)
