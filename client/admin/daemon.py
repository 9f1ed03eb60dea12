"""``m3fed site start``: a hospital's daemon, Flower's SuperNode plus the approval guard.

The site is checked first (``client.admin.site_config.check_site``); then two processes run under this
one, and stop with it: ``flower-supernode`` (outbound HTTPS to the SuperLink only, TLS verified
against the consortium CA, authenticated with the site's key; ClientApps isolated in separate
processes) and ``client.admin.guard`` (Flower's SuperExec, launching ClientApps only from approved app
bundles). The SuperNode's runtime API (``127.0.0.1:runtime_port``, where tasks and their tokens are
handed out) answers ``acquire-task`` only when it is signed with ``state_dir/superexec.secret``
(0600), which only the guard holds. Its state (Flower's home, the DP ledger, the guard's refusals,
the decoded images and reports, the optimiser state a run carries from round to round) lives in
``state_dir``, 0700, written with umask 077 by every process started here. The SuperNode's
output is passed on with its connection retries summarised (``ConnectionLog``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from client.admin.site_config import SiteConfig
from client.errors import DataError

REFUSED_KEY = "Failed to activate SuperNode"  # flower-supernode's message for an unregistered key (exit 305)
# flower-supernode's log lines (flwr.supercore.retry.*_retry, flwr.supernode.start_client_internal):
RETRYING = "Connection attempt failed"       # WARN each backoff, every ≤ 20 s while the SuperLink is unreachable
RECONNECTED = "Connection successful after"  # INFO once a call gets through after retries
CONNECTED = "SuperNode ID:"                  # INFO once the node is activated at the SuperLink
UNREACHABLE_WARNING_S = 120.0
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def site_env(cfg: SiteConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"FLWR_HOME": str(cfg.state_dir / "flwr-home"), "FLWR_TELEMETRY_ENABLED": "0",
                "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
                "HF_HUB_OFFLINE": "1",
                # Flower launches flwr-clientapp by name: it must be this environment's copy.
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return env


def _toml_pairs(values: dict[str, str]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


def supernode_command(cfg: SiteConfig) -> list[str]:
    cmd = [_bin("flower-supernode"), "--superlink", cfg.superlink, "--isolation", "process",
           "--host", "127.0.0.1", "--port", str(cfg.runtime_port), "--node-config", _toml_pairs(cfg.node_config())]
    cmd += ["--superexec-auth-secret-file", str(cfg.superexec_secret)]
    if cfg.insecure:
        return cmd + ["--insecure"]
    return cmd + ["--root-certificates", str(cfg.ca_certificate), "--auth-supernode-private-key", str(cfg.private_key)]


def guard_command(cfg: SiteConfig, supernode_pid: int) -> list[str]:
    return [sys.executable, "-m", "client.admin.guard", "serve",
            "--runtime-api-address", f"127.0.0.1:{cfg.runtime_port}",
            "--site", cfg.site, "--approved", ",".join(cfg.approved_apps),
            "--superexec-auth-secret-file", str(cfg.superexec_secret),
            "--refusal-log", str(cfg.state_dir / "refused-apps.jsonl"), "--parent-pid", str(supernode_pid)]


def app_hash(app: str | Path) -> str:
    """The sha256 of the app bundle ``flwr run`` builds from ``app`` (what ``approved_apps`` lists)."""
    from flwr.cli.build import build_fab_from_disk

    app = Path(app).resolve()
    if not (app / "pyproject.toml").is_file():
        raise DataError(app, "not a Flower app (no pyproject.toml)")
    return hashlib.sha256(build_fab_from_disk(app)).hexdigest()


def run_site(cfg: SiteConfig) -> int:
    """Run until stopped (SIGTERM/SIGINT) or until the SuperNode exits; children never outlive this."""
    from client.admin.keys import ensure_secret, make_private

    os.umask(0o077)  # inherited by the SuperNode, the guard and every ClientApp: nothing here for other users
    make_private(cfg.state_dir)
    ensure_secret(cfg.superexec_secret)
    env = site_env(cfg)
    print(f"m3fed site {cfg.site}: connecting to {cfg.superlink} "
          f"({'INSECURE: no TLS, no node authentication' if cfg.insecure else 'TLS + node authentication'}); "
          f"approved app bundles: {len(cfg.approved_apps)}", flush=True)
    supernode = subprocess.Popen(supernode_command(cfg), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, errors="replace")
    refused = threading.Event()
    threading.Thread(target=_echo, args=(supernode.stdout, refused,
                                         ConnectionLog(cfg.site, f"the SuperLink at {cfg.superlink}")),
                     daemon=True).start()
    guard = subprocess.Popen(guard_command(cfg, supernode.pid), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")
    # The guard retries until the SuperNode's runtime API is up (a second or two): said only if it lasts.
    threading.Thread(target=_echo, args=(guard.stdout, threading.Event(), ConnectionLog(
        cfg.site, f"the SuperNode's runtime API at 127.0.0.1:{cfg.runtime_port}", quiet=True)), daemon=True).start()
    try:
        while supernode.poll() is None:
            if guard.poll() is not None:
                print(f"m3fed site {cfg.site}: the approval guard exited ({guard.returncode}); stopping",
                      file=sys.stderr, flush=True)
                return 1
            try:
                supernode.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        if refused.is_set():
            raise DataError(cfg.private_key or cfg.source, f"the SuperLink at {cfg.superlink} refused this site's key: "
                            "not registered (send the .pub to the consortium operator: m3fed server register-site), "
                            "unregistered, or still online from a connection that did not end cleanly (retry in a "
                            "minute)")
        return supernode.returncode
    finally:
        for proc in (guard, supernode):
            _stop(proc)


class ConnectionLog:
    """A Flower process's output with its connection retries summarised, for the admin's log.

    Flower warns on every retry while what it connects to (the SuperLink, or for the guard the
    SuperNode's runtime API) is not up yet, which is normal at start-up. Instead: one line when it
    starts waiting, a warning only once it has waited ``timeout`` seconds (then at most one per
    further ``timeout``, with Flower's last message), one line when connected; ``quiet``: the
    warnings only. Every other line passes through unchanged.
    """

    def __init__(self, site: str, target: str, *, timeout: float = UNREACHABLE_WARNING_S, quiet: bool = False
                 ) -> None:
        self.who, self.target, self.timeout, self.quiet = f"m3fed site {site}", target, timeout, quiet
        self.connected, self.since, self.next_warning = False, None, 0.0  # since: waiting since (None: not)

    def __call__(self, line: str, now: float) -> list[str]:
        """What to print for one line of the process's output read at ``now`` (seconds, monotonic)."""
        if RETRYING in line:
            if self.since is None:
                self.since, self.next_warning = now, now + self.timeout
                return self._say(f"{'lost' if self.connected else 'waiting for'} {self.target} (retrying)")
            if now < self.next_warning:
                return []
            self.next_warning = now + self.timeout
            return [f"warning: {self.who}: still cannot reach {self.target} after {now - self.since:.0f} s: "
                    f"{_message(line)}\n"]
        if RECONNECTED in line or CONNECTED in line:
            reached = self.since is not None or not self.connected
            waited = "" if self.since is None else f" after {now - self.since:.0f} s"
            self.connected, self.since = True, None
            said = self._say(f"connected to {self.target}{waited}") if reached else []
            return said + ([line] if CONNECTED in line else [])  # the node id is worth keeping in the log
        return [line]

    def _say(self, text: str) -> list[str]:
        return [] if self.quiet else [f"{self.who}: {text}\n"]


def _message(line: str) -> str:
    """Flower's log line without its colours and level column."""
    text = _ANSI.sub("", line).strip()
    return text.split(":", 1)[1].strip() if re.match(r"^[A-Z]+\s*:", text) else text


def _echo(stream, refused: threading.Event, log: ConnectionLog | None = None, *, clock=time.monotonic,
          out=None) -> None:
    out = out or sys.stdout
    for line in stream:
        if REFUSED_KEY in line:
            refused.set()
        for text in (log(line, clock()) if log is not None else [line]):
            out.write(text)
        out.flush()


def _stop(proc: subprocess.Popen) -> None:
    # A service manager may have signalled the whole group already; a second SIGTERM would cut the
    # SuperNode's shutdown short before it tells the SuperLink it is offline (then a restart within
    # the heartbeat window is refused as "could not be activated").
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def systemd_unit(cfg_path: Path, cfg: SiteConfig, *, user: str) -> str:
    from client.admin.systemd import service_unit, unit_path

    config, state = unit_path(cfg_path, "--config"), unit_path(cfg.state_dir, f"{cfg.source}: state_dir")
    return service_unit(
        description=f"m3fed hospital site {cfg.site} (Flower SuperNode, outbound HTTPS to {cfg.superlink})",
        user=user, args=["site", "start", "--config", str(config)], writable=[state], restart_sec=60,
        notes={"restart": "A key still marked online after a crash is admitted again after two missed heartbeats "
                          "(~60 s).",
               "kill": "SIGTERM to m3fed only: it stops the SuperNode (which then tells the SuperLink it is "
                       "offline) and the guard.",
               "umask": "state_dir holds decoded reports and the ledger: nothing written there is for other users."})
