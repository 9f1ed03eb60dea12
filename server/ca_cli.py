"""The consortium CA's commands: ``m3fed ca init | issue-server | request | sign-csr``.

``issue-server`` makes key and certificate in one step where ``ca.key`` is at hand; ``request`` (on
the server host) and ``sign-csr`` (on the offline CA machine) do the same with only the CSR, the
certificate and ``ca.crt`` moving between the two.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _valid_for(cert_path: Path) -> str:
    from client.admin.keys import load_certificate
    from server.pki import server_hosts

    cert = load_certificate(cert_path)
    return f"valid for: {', '.join(server_hosts(cert))} (until {cert.not_valid_after_utc:%Y-%m-%d})"


def _ca_init(args) -> int:
    from server.pki import init_ca

    path = init_ca(Path(args.out), name=args.name, days=args.days)
    print(f"wrote {path} (give it to every site) and {Path(args.out) / 'ca.key'} (keep it offline)")
    return 0


def _ca_issue(args) -> int:
    from server.pki import SERVER_KEY, issue_server

    path = issue_server(Path(args.ca_dir), hosts=args.host, out=Path(args.out) if args.out else None, days=args.days)
    print(f"wrote {path} and its key {path.parent / SERVER_KEY}, {_valid_for(path)}")
    return 0


def _ca_request(args) -> int:
    from server.csr import request_server
    from server.pki import server_names

    out = Path(args.out)
    key, csr = request_server(out, hosts=args.host)
    print(f"wrote {key} (the server's private key: it stays on this host) and {csr}, asking for: "
          f"{', '.join(server_names(args.host))}")
    print(f"next: carry only {csr} to the CA machine and run there\n"
          f"  m3fed ca sign-csr --ca-dir CA_DIR --csr {csr.name} --out DIR\n"
          f"then bring DIR/server.pem and DIR/ca.crt back into {out.resolve()} and start with\n"
          f"  m3fed server start --certs {out.resolve()} ...")
    return 0


def _ca_sign(args) -> int:
    from server.csr import sign_csr
    from server.pki import CA_CERT

    path = sign_csr(Path(args.ca_dir), csr=Path(args.csr), out=Path(args.out), days=args.days)
    print(f"wrote {path}, {_valid_for(path)}, and {path.parent / CA_CERT}")
    print(f"next: carry {path.name} and {CA_CERT} back to the server host, into the folder holding its "
          f"server.key (where m3fed ca request wrote it), then: m3fed server start --certs THAT_FOLDER ...")
    return 0


def add_ca_commands(sub: argparse._SubParsersAction) -> None:
    ca = sub.add_parser("ca", help="the consortium's certificate authority").add_subparsers(dest="ca_command",
                                                                                           required=True)
    p = ca.add_parser("init", help="create the consortium CA (ca.crt for the sites, ca.key kept offline)")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="m3fed consortium CA")
    p.add_argument("--days", type=int, default=3650)
    p.set_defaults(func=_ca_init)
    p = ca.add_parser("issue-server", help="the SuperLink's TLS key and certificate in one step (needs ca.key here)")
    p.add_argument("--ca-dir", required=True, help="folder with ca.crt and ca.key")
    p.add_argument("--host", action="append", required=True,
                   help="a DNS name or IP sites dial (repeatable; localhost, 127.0.0.1 and ::1 are always added)")
    p.add_argument("--out", help="where to write server.pem/server.key/ca.crt (default: --ca-dir)")
    p.add_argument("--days", type=int, default=825)
    p.set_defaults(func=_ca_issue)
    p = ca.add_parser("request", help="on the server host: its TLS key and a signing request for the CA machine")
    p.add_argument("--host", action="append", required=True,
                   help="a DNS name or IP sites dial (repeatable; localhost, 127.0.0.1 and ::1 are always added)")
    p.add_argument("--out", required=True, help="where to write server.key (0600, never overwritten) and server.csr")
    p.set_defaults(func=_ca_request)
    p = ca.add_parser("sign-csr", help="on the CA machine: sign a server's request (m3fed ca request)")
    p.add_argument("--ca-dir", required=True, help="folder with ca.crt and ca.key")
    p.add_argument("--csr", required=True, help="the server.csr carried from the server host")
    p.add_argument("--out", required=True, help="where to write server.pem and a copy of ca.crt")
    p.add_argument("--days", type=int, default=825)
    p.set_defaults(func=_ca_sign)
