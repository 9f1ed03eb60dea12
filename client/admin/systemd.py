"""systemd units for m3fed's long-running processes (a site's daemon, the SuperLink): one hardening for both.

Each unit runs an ``m3fed`` command from this environment as an unprivileged user, with umask 077 and
a read-only file system except the folders it must write. SIGTERM goes to the ``m3fed`` process only
(``KillMode=mixed``): it stops its Flower children itself, so that they can sign off cleanly;
whatever is left is killed after the timeout. Every value that goes into the unit is checked first:
a user name or path that systemd would read as something else is refused, naming the flag.
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


def unit_path(path: Path, flag: str) -> Path:
    """``path`` made absolute, or a DataError naming ``flag`` if systemd would read it as another path."""
    path = Path(path).resolve()
    if _UNSAFE.search(str(path)):
        raise DataError(flag, f"{str(path)!r}: a systemd unit needs a path without spaces, quotes, backslashes or %")
    return path


def unit_word(value: str, flag: str) -> str:
    """A single word for a unit line (the host to listen on): refused if empty or if it would split or expand."""
    if not value or _UNSAFE.search(value):
        raise DataError(flag, f"{value!r} is not a single word a systemd unit can hold")
    return value


def service_unit(*, description: str, user: str, args: list[str], writable: list[Path], restart_sec: int,
                 notes: dict[str, str], preamble: str = "") -> str:
    """The unit text running ``m3fed *args`` as ``user``; ``notes`` are the comments above Restart/KillMode/UMask.

    ``args`` and ``writable`` must already have passed ``unit_path`` / ``unit_word``.
    """
    if not _USER.fullmatch(user):
        raise DataError("--user", f"{user!r} is not a user name")
    exec_start = shlex.join([str(Path(sys.executable).parent / "m3fed"), *args])

    def note(key: str) -> str:
        return f"# {notes[key]}\n" if key in notes else ""

    return f"""{preamble}[Unit]
Description={description}
After=network-online.target
Wants=network-online.target

[Service]
User={user}
ExecStart={exec_start}
Restart=on-failure
{note("restart")}RestartSec={restart_sec}
{note("kill")}KillMode=mixed
TimeoutStopSec=30
Environment=FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 HF_HUB_OFFLINE=1
NoNewPrivileges=true
{note("umask")}UMask=0077
ProtectSystem=strict
ReadWritePaths={" ".join(str(p) for p in writable)}
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"""
