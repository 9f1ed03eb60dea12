"""``m3fed server start`` and the site register: Flower's SuperLink, secure by default.

The SuperLink serves TLS with the consortium's server certificate and admits only SuperNodes whose
public key the operator registered (``--enable-supernode-auth``). Plain HTTP (which also means no
node authentication: Flower requires TLS for it) only with an explicit ``--insecure``. Telemetry,
update checks and run-time dependency installation are off; state (SQLite), logs and Flower's
home live in ``--state``. The command validates, then *becomes* ``flower-superlink`` (exec), so
its PID is the SuperLink's and a service manager stops it directly.

Registration goes through Flower's own CLI (``flwr supernode register``). Flower keeps node ids,
not names, so the consortium's name -> node id map is kept in ``<state>/sites.json``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from client.errors import DataError
from server.pki import CA_CERT, SERVER_CERT, SERVER_KEY, check_public_key, check_server_certificates

CONNECTION = "m3fed"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    state: Path
    certs: Path | None
    host: str = "0.0.0.0"
    port: int = 8000
    insecure: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise DataError("--port", f"{self.port} is not a port number")
        if self.insecure:
            return
        if self.certs is None:
            raise DataError("--certs", "no TLS certificates given: the SuperLink serves TLS with node "
                                       "authentication by default. Make them with `m3fed ca init` and "
                                       "`m3fed ca issue-server --host NAME`, then pass --certs DIR; or pass "
                                       "--insecure for plain HTTP without node authentication (test set-ups only)")
        missing = [name for name in (CA_CERT, SERVER_CERT, SERVER_KEY) if not (self.certs / name).is_file()]
        if missing:
            raise DataError(self.certs, f"missing {', '.join(missing)}: the SuperLink refuses to start without "
                                        "TLS (m3fed ca issue-server writes them; --insecure to run without)")
        check_server_certificates(self.certs)


def flower_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "HF_HUB_OFFLINE": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return env


def superlink_command(cfg: ServerConfig) -> list[str]:
    cmd = [str(Path(sys.executable).parent / "flower-superlink"), "--host", cfg.host, "--port", str(cfg.port),
           "--database", str(cfg.state / "state.db"), "--disable-runtime-dependency-installation",
           "--log-file", str(cfg.state / "logs" / "superlink.log")]
    if cfg.insecure:
        return cmd + ["--insecure"]
    c = cfg.certs.resolve()
    return cmd + ["--ssl-ca-certfile", str(c / CA_CERT), "--ssl-certfile", str(c / SERVER_CERT),
                  "--ssl-keyfile", str(c / SERVER_KEY), "--enable-supernode-auth"]


def start_server(cfg: ServerConfig) -> None:
    """Replace this process with the SuperLink (its working directory: the state folder)."""
    (cfg.state / "logs").mkdir(parents=True, exist_ok=True)
    cmd = superlink_command(cfg)
    mode = "INSECURE: plain HTTP, any SuperNode may join" if cfg.insecure else "TLS + SuperNode authentication"
    print(f"m3fed server: SuperLink on {cfg.host}:{cfg.port} ({mode}); state {cfg.state}; "
          f"log {cfg.state / 'logs' / 'superlink.log'}", flush=True)
    os.chdir(cfg.state)
    os.execve(cmd[0], cmd, flower_env(cfg.state / "flwr-home"))


# -- the operator's side: Flower's CLI against a SuperLink ------------------------------------------

def operator_home(state: Path, superlink: str, *, ca: Path | None, insecure: bool) -> Path:
    """A private FLWR_HOME whose config.toml names the SuperLink (connection ``m3fed``)."""
    home = state / "operator-flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]",
             f"address = {json.dumps(superlink)}"]
    if insecure:
        lines.append("insecure = true")
    else:
        if ca is None or not Path(ca).is_file():
            raise DataError(ca or "--ca", "the consortium CA certificate is needed to verify the SuperLink")
        lines.append(f"root-certificates = {json.dumps(str(Path(ca).resolve()))}")
    (home / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return home


def flwr_cli(home: Path, *args: str, timeout: float = 120) -> dict:
    """One ``flwr`` command with JSON output; a failure becomes a plain error."""
    proc = subprocess.run([str(Path(sys.executable).parent / "flwr"), *args, "--format", "json"],
                          env=flower_env(home), capture_output=True, text=True, timeout=timeout, cwd=home)
    try:
        doc = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        doc = {}
    if proc.returncode or not doc.get("success", False):
        detail = doc.get("error-message") or (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise DataError(f"flwr {args[0]} {args[1] if len(args) > 1 else ''}".strip(),
                        f"failed: {detail if isinstance(detail, str) else detail[0]}")
    return doc


def _registry(state: Path) -> Path:
    return state / "sites.json"


def read_registry(state: Path) -> dict[str, dict]:
    path = _registry(state)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def register_site(state: Path, name: str, public_key: Path, *, superlink: str, ca: Path | None,
                  insecure: bool = False) -> int:
    check_public_key(public_key)
    sites = read_registry(state)
    if name in sites:
        raise DataError(_registry(state), f"site {name!r} is already registered (node {sites[name]['node_id']}); "
                                          "unregister it first")
    home = operator_home(state, superlink, ca=ca, insecure=insecure)
    node_id = int(flwr_cli(home, "supernode", "register", str(Path(public_key).resolve()), CONNECTION,
                           "--name", name)["node-id"])
    sites[name] = {"node_id": node_id, "public_key": Path(public_key).read_text(encoding="utf-8").strip()}
    _registry(state).write_text(json.dumps(sites, indent=2), encoding="utf-8")
    return node_id


def unregister_site(state: Path, name: str, *, superlink: str, ca: Path | None, insecure: bool = False) -> int:
    sites = read_registry(state)
    if name not in sites:
        raise DataError(_registry(state), f"no site named {name!r} (registered: {', '.join(sites) or 'none'})")
    home = operator_home(state, superlink, ca=ca, insecure=insecure)
    flwr_cli(home, "supernode", "unregister", str(sites[name]["node_id"]), CONNECTION)
    node_id = sites.pop(name)["node_id"]
    _registry(state).write_text(json.dumps(sites, indent=2), encoding="utf-8")
    return node_id
