"""``m3fed server systemd-unit``: the SuperLink as a systemd service, hardened as the sites' unit is.

The unit runs ``m3fed server start`` (``client.admin.systemd``), writing only the state folder (and
the folder the runs' ``--out`` folders go in, which the ServerApp writes on this host). SIGTERM goes
to the SuperLink only (it becomes the ``m3fed`` process and stops its SuperExec itself).
"""
from __future__ import annotations

from pathlib import Path

from client.admin.systemd import service_unit, unit_path, unit_word
from client.errors import DataError


def server_systemd_unit(*, certs: Path, state: Path, port: int, control_port: int, host: str, user: str,
                        runs: Path | None = None) -> str:
    """The unit text; ``runs``, when given, is where ``m3fed run --out`` folders go (the ServerApp writes there)."""
    for flag, number in (("--port", port), ("--control-port", control_port)):
        if not 1 <= number <= 65535:
            raise DataError(flag, f"{number} is not a port number")
    host = unit_word(host, "--host")
    if port == control_port:
        raise DataError("--control-port", f"{control_port} is also --port")
    certs, state = unit_path(certs, "--certs"), unit_path(state, "--state")
    writable = [state] + ([unit_path(runs, "--runs")] if runs is not None else [])
    owned = " ".join(str(p) for p in [certs, *writable])
    preamble = f"""# m3fed SuperLink: install as /etc/systemd/system/m3fed-server.service. The certs folder and the
# state folder must exist and be owned by {user} (it reads server.key and writes its state as {user},
# and may write nowhere else):
#   mkdir -p {owned} && chown -R {user}: {owned}
# then: systemctl daemon-reload && systemctl enable --now m3fed-server
"""
    return service_unit(
        description=f"m3fed SuperLink (Fleet API for the sites on {host}:{port}, TLS; control on "
                    f"127.0.0.1:{control_port})",
        user=user, args=["server", "start", "--certs", str(certs), "--state", str(state), "--port", str(port),
                         "--control-port", str(control_port), "--host", host],
        writable=writable, restart_sec=10, preamble=preamble,
        notes={"kill": "SIGTERM to the SuperLink only: it stops its SuperExec (and the ServerApp) itself.",
               "umask": "Run folders, checkpoints and the SQLite state: nothing written here is for other users."})
