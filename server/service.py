"""``m3fed server systemd-unit``: the SuperLink as a systemd service, in the style of the sites' unit.

The unit runs ``m3fed server start`` from this environment as an unprivileged user, with umask 077
and a read-only file system except the state folder (and the folder the runs' ``--out`` folders go
in, which the ServerApp writes on this host). SIGTERM goes to the SuperLink only (it becomes the
``m3fed`` process and stops its SuperExec itself); whatever is left is killed after the timeout.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from client.errors import DataError

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]+")
# systemd splits ReadWritePaths= on spaces and expands %-specifiers: such a path would silently mean another.
_UNSAFE = re.compile(r"[\s%\"'\\]")


def _path(path: Path, flag: str) -> Path:
    path = Path(path).resolve()
    if _UNSAFE.search(str(path)):
        raise DataError(flag, f"{str(path)!r}: a systemd unit needs a path without spaces, quotes, backslashes or %")
    return path


def server_systemd_unit(*, certs: Path, state: Path, port: int, control_port: int, host: str, user: str,
                        runs: Path | None = None) -> str:
    """The unit text; ``runs``, when given, is where ``m3fed run --out`` folders go (the ServerApp writes there)."""
    if not _USER.fullmatch(user):
        raise DataError("--user", f"{user!r} is not a user name")
    for flag, number in (("--port", port), ("--control-port", control_port)):
        if not 1 <= number <= 65535:
            raise DataError(flag, f"{number} is not a port number")
    if not host or _UNSAFE.search(host):
        raise DataError("--host", f"{host!r} is not an address to listen on")
    if port == control_port:
        raise DataError("--control-port", f"{control_port} is also --port")
    certs, state = _path(certs, "--certs"), _path(state, "--state")
    writable = [state] + ([_path(runs, "--runs")] if runs is not None else [])
    m3fed = shlex.quote(str(Path(sys.executable).parent / "m3fed"))
    owned = " ".join(str(p) for p in [certs, *writable])
    return f"""# m3fed SuperLink: install as /etc/systemd/system/m3fed-server.service. The certs folder and the
# state folder must exist and be owned by {user} (it reads server.key and writes its state as {user},
# and may write nowhere else):
#   mkdir -p {owned} && chown -R {user}: {owned}
# then: systemctl daemon-reload && systemctl enable --now m3fed-server
[Unit]
Description=m3fed SuperLink (Fleet API for the sites on {host}:{port}, TLS; control on 127.0.0.1:{control_port})
After=network-online.target
Wants=network-online.target

[Service]
User={user}
ExecStart={m3fed} server start --certs {certs} --state {state} --port {port} --control-port {control_port} \
--host {host}
Restart=on-failure
RestartSec=10
# SIGTERM to the SuperLink only: it stops its SuperExec (and the ServerApp) itself.
KillMode=mixed
TimeoutStopSec=30
Environment=FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 HF_HUB_OFFLINE=1
NoNewPrivileges=true
# Run folders, checkpoints and the SQLite state: nothing written here is for other users.
UMask=0077
ProtectSystem=strict
ReadWritePaths={" ".join(str(p) for p in writable)}
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"""
