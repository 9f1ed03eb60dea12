"""The consortium CA's commands: ``m3fed ca init | issue-server``."""
from __future__ import annotations

import argparse
from pathlib import Path


def _ca_init(args) -> int:
    from server.pki import init_ca

    path = init_ca(Path(args.out), name=args.name, days=args.days)
    print(f"wrote {path} (give it to every site) and {Path(args.out) / 'ca.key'} (keep it offline)")
    return 0


def _ca_issue(args) -> int:
    from server.pki import issue_server

    path = issue_server(Path(args.ca_dir), hosts=args.host, out=Path(args.out) if args.out else None, days=args.days)
    print(f"wrote {path} and its key, valid for: {', '.join(args.host)}")
    return 0


def add_ca_commands(sub: argparse._SubParsersAction) -> None:
    ca = sub.add_parser("ca", help="the consortium's certificate authority").add_subparsers(dest="ca_command",
                                                                                           required=True)
    p = ca.add_parser("init", help="create the consortium CA (ca.crt for the sites, ca.key kept offline)")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="m3fed consortium CA")
    p.add_argument("--days", type=int, default=3650)
    p.set_defaults(func=_ca_init)
    p = ca.add_parser("issue-server", help="the SuperLink's TLS certificate, its SAN covering what sites dial")
    p.add_argument("--ca-dir", required=True, help="folder with ca.crt and ca.key")
    p.add_argument("--host", action="append", required=True, help="a DNS name or IP sites dial (repeatable)")
    p.add_argument("--out", help="where to write server.pem/server.key/ca.crt (default: --ca-dir)")
    p.add_argument("--days", type=int, default=825)
    p.set_defaults(func=_ca_issue)
