"""``m3fed site start``: a hospital's daemon, Flower's SuperNode plus the approval guard.

The site is checked first (``client.site_config.check_site``); then two processes run under this
one, and stop with it: ``flower-supernode`` (outbound HTTPS to the SuperLink only, TLS verified
against the consortium CA, authenticated with the site's key; ClientApps isolated in separate
processes) and ``client.guard`` (Flower's SuperExec, launching ClientApps only from approved app
bundles). The SuperNode's runtime API (``127.0.0.1:runtime_port``, where tasks and their tokens are
handed out) answers ``acquire-task`` only when it is signed with ``state_dir/superexec.secret``
(0600), which only the guard holds. Its state (Flower's home, the DP ledger, the guard's refusals,
the decoded images and reports, the optimiser state a run carries from round to round) lives in
``state_dir``, 0700, written with umask 077 by every process started here.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

from client.errors import DataError
from client.site_config import SiteConfig

REFUSED_KEY = "Failed to activate SuperNode"  # flower-supernode's message for an unregistered key (exit 305)


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
    return [sys.executable, "-m", "client.guard", "serve", "--runtime-api-address", f"127.0.0.1:{cfg.runtime_port}",
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
    from server.pki import ensure_secret, make_private

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
    threading.Thread(target=_echo, args=(supernode.stdout, refused), daemon=True).start()
    guard = subprocess.Popen(guard_command(cfg, supernode.pid), env=env)
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


def _echo(stream, refused: threading.Event) -> None:
    for line in stream:
        if REFUSED_KEY in line:
            refused.set()
        sys.stdout.write(line)
        sys.stdout.flush()


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
    m3fed = shlex.quote(_bin("m3fed"))
    return f"""[Unit]
Description=m3fed hospital site {cfg.site} (Flower SuperNode, outbound HTTPS to {cfg.superlink})
After=network-online.target
Wants=network-online.target

[Service]
User={user}
ExecStart={m3fed} site start --config {shlex.quote(str(cfg_path.resolve()))}
Restart=on-failure
# A key still marked online after a crash is admitted again after two missed heartbeats (~60 s).
RestartSec=60
# SIGTERM to m3fed only: it stops the SuperNode (which then tells the SuperLink it is offline) and the guard.
KillMode=mixed
TimeoutStopSec=30
Environment=FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1 HF_HUB_OFFLINE=1
NoNewPrivileges=true
# state_dir holds decoded reports and the ledger: nothing written there is for other users.
UMask=0077
ProtectSystem=strict
ReadWritePaths={cfg.state_dir}
PrivateTmp=true

[Install]
WantedBy=multi-user.target
"""
