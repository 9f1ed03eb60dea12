"""``m3fed server start`` and the site register: Flower's SuperLink, closed to everyone but the sites.

In flwr 1.42 one HTTP server carries the SuperLink's Fleet API (SuperNodes), Control API (``flwr``
CLI: submit, list, stop runs, register nodes) and Runtime API (the SuperExec acquires the
ServerApp's task and its token there), and OSS Flower authenticates no user on the last two. So
the SuperLink runs here as Flower's own FastAPI app (``flwr.superlink.main.create_app``, Flower's
argument parsing, middleware and node authentication) served on two listeners in one process:

- ``--host:--port`` (default 0.0.0.0:8000), TLS: the **Fleet API only**, every other path 404.
  Fleet calls are signed by a registered site key (``--enable-supernode-auth``; Flower refuses
  Fleet self-registration when it is on), so a caller holding only ``ca.crt`` can do nothing there.
- ``127.0.0.1:--control-port`` (default 9093), plain HTTP: all three APIs, for the operator's
  ``flwr``/``m3fed run`` on this host (or through an SSH tunnel) and the SuperExec.

Flower's gRPC Fleet API (``--fleet-api-type grpc-rere``/``--fleet-api-address``) would be the
native split, but 1.42 starts it only behind an internal switch and ``flower-supernode`` speaks
only HTTP, so no site could use it. The ServerApp runs under Flower's SuperExec
(``--isolation process``) whose ``acquire-task`` calls are signed with a shared secret
(``<state>/superexec.secret``, 0600): without it the Runtime API hands out no task or token.

Plain HTTP (no TLS, so no node authentication either: Flower requires TLS for it) only with an
explicit ``--insecure``. Telemetry, update checks and run-time dependency installation are off;
state (SQLite), logs, Flower's home and run folders are written with umask 077 under ``--state``
(0700). The command validates, then *becomes* the SuperLink process (exec), so its PID is the
SuperLink's and a service manager stops it directly; the SuperExec stops with it.

Flower internals this relies on (recheck on any upgrade): ``flower_superlink._parse_superlink_lifespan_config``
and ``SuperLinkLifespan._start_superexec_if_needed``, and the app's ``state.linkstate_factory`` (the run
folder of a finished run, for ``server.artifacts``). The SuperExec is watched (``server.runtime_watch``):
the server exits 1, saying why, when it cannot start ServerApps.

Registration goes through Flower's own CLI (``flwr supernode register``) on the control listener.
Flower keeps node ids, not names, so the consortium's name -> node id map is in ``<state>/sites.json``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from client.admin.keys import ensure_secret, make_private
from client.errors import DataError
from server.artifacts import artifact_route, make_provider
from server.pki import CA_CERT, SERVER_CERT, SERVER_KEY, check_public_key, check_server_certificates
from server.runtime_watch import RuntimeWatch

CONNECTION = "m3fed"
CONTROL_PORT = 9093
SECRET = "superexec.secret"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    state: Path
    certs: Path | None
    host: str = "0.0.0.0"
    port: int = 8000                 # the sites' Fleet API: the one port a hospital dials
    control_port: int = CONTROL_PORT  # loopback only: Control and Runtime APIs
    insecure: bool = False

    def __post_init__(self) -> None:
        for flag, port in (("--port", self.port), ("--control-port", self.control_port)):
            if not 1 <= port <= 65535:
                raise DataError(flag, f"{port} is not a port number")
        if self.port == self.control_port:
            raise DataError("--control-port", f"{self.control_port} is also --port: the loopback control "
                                              "listener needs a port of its own")
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


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def flower_env(home: Path) -> dict[str, str]:
    """This environment for a Flower process: its own ``FLWR_HOME``, telemetry, update checks and
    run-time dependency installation off, and this environment's Flower executables first on PATH
    (flwr spawns flower-superlink and the SuperExec by name)."""
    env = dict(os.environ)
    env.update({"FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", "HF_HUB_OFFLINE": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    return env


def superlink_command(cfg: ServerConfig) -> list[str]:
    """This module's ``serve`` (-P: nothing is imported from the state folder, its working directory)."""
    flower = ["--host", "127.0.0.1", "--port", str(cfg.control_port), "--database", str(cfg.state / "state.db"),
              "--disable-runtime-dependency-installation", "--log-file", str(cfg.state / "logs" / "superlink.log")]
    if cfg.insecure:
        flower.append("--insecure")
    else:
        c = cfg.certs.resolve()
        flower += ["--ssl-ca-certfile", str(c / CA_CERT), "--ssl-certfile", str(c / SERVER_CERT),
                   "--ssl-keyfile", str(c / SERVER_KEY), "--enable-supernode-auth"]
    return [sys.executable, "-P", "-m", "server.superlink", "--fleet-host", cfg.host, "--fleet-port", str(cfg.port),
            "--secret", str(cfg.state / SECRET), "--", *flower]


def start_server(cfg: ServerConfig) -> None:
    """Replace this process with the SuperLink (its working directory: the state folder)."""
    os.umask(0o077)  # inherited by the SuperExec and every ServerApp: run folders are the operator's alone
    make_private(cfg.state)
    (cfg.state / "logs").mkdir(exist_ok=True)
    ensure_secret(cfg.state / SECRET)
    cmd = superlink_command(cfg)
    mode = "INSECURE: plain HTTP, any SuperNode may join" if cfg.insecure else "TLS + SuperNode authentication"
    print(f"m3fed server: Fleet API for the sites on {cfg.host}:{cfg.port} ({mode}); control and runtime APIs "
          f"on 127.0.0.1:{cfg.control_port} only; state {cfg.state}; log {cfg.state / 'logs' / 'superlink.log'}",
          flush=True)
    os.chdir(cfg.state)
    os.execve(cmd[0], cmd, flower_env(cfg.state / "flwr-home"))


def superexec_command(control_port: int, secret: str | Path, parent_pid: int) -> list[str]:
    return [_bin("flower-superexec"), "--insecure", "--runtime-api-address", f"127.0.0.1:{control_port}",
            "--superexec-auth-secret-file", str(secret), "--parent-pid", str(parent_pid)]


def fleet_only(app):
    """An ASGI app that passes Flower's Fleet routes to ``app`` and answers everything else 404."""
    from flwr.superlink.routers.fleet.router import router
    from starlette.responses import PlainTextResponse

    allowed = frozenset(route.path for route in router.routes)
    refused = PlainTextResponse("only the Fleet API (SuperNodes) is served on this address\n", status_code=404)

    async def gate(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in allowed:
            await app(scope, receive, send)
        elif scope["type"] == "http":
            await refused(scope, receive, send)
        # anything else (websocket) is closed unanswered
    return gate


def serve(argv: list[str]) -> None:
    """Flower's SuperLink app on the loopback control listener and, Fleet API only, on the public one."""
    import argparse
    import asyncio
    import importlib
    from contextlib import nullcontext

    import uvicorn
    from flwr.superlink.main import create_app
    from flwr.supercore.http_logging import get_uvicorn_log_config
    from flwr.supercore.logger import console_handler

    parser = argparse.ArgumentParser(prog="python -m server.superlink")
    parser.add_argument("--fleet-host", required=True)
    parser.add_argument("--fleet-port", type=int, required=True)
    parser.add_argument("--secret", required=True, help="the SuperExec auth secret file")
    parser.add_argument("flower", nargs=argparse.REMAINDER, help="-- then flower-superlink's arguments")
    args = parser.parse_args(argv)
    sys.argv = ["flower-superlink", *[a for a in args.flower if a != "--"], "--isolation", "process",
                "--superexec-auth-secret-file", args.secret]
    flower = importlib.import_module("flwr.superlink.cli.flower_superlink")
    config = flower._parse_superlink_lifespan_config()  # Flower's own checks (TLS for node auth, secret)
    config.artifact_provider = make_provider(config.port)  # `flwr pull`: the run's results, on loopback
    watch = RuntimeWatch(config.port)

    class Lifespan(flower.SuperLinkLifespan):
        def _start_superexec_if_needed(self) -> None:  # Flower's, but signed with the secret
            self.superexec_process = subprocess.Popen(superexec_command(config.port, args.secret, os.getpid()))
            watch.start(self.superexec_process)

        def shutdown(self) -> None:  # Flower waits 1 s and leaves it behind; a service stop must end it
            watch.stop()
            if self.superexec_process is not None and self.superexec_process.poll() is None:
                self.superexec_process.terminate()
                try:
                    self.superexec_process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.superexec_process.kill()
                    self.superexec_process.wait()
            super().shutdown()

    class Listener(uvicorn.Server):
        def capture_signals(self):  # one handler for both listeners, installed by _serve_all
            return nullcontext()

    app = create_app(config, Lifespan)
    common = {"log_config": get_uvicorn_log_config(console_handler.level), "access_log": True,
              "proxy_headers": False, "workers": 1}
    control_app = artifact_route(watch.gate(app), lambda: app.state.linkstate_factory.state())
    control = Listener(uvicorn.Config(control_app, host=config.host, port=config.port, **common))
    fleet = Listener(uvicorn.Config(fleet_only(app), host=args.fleet_host, port=args.fleet_port, lifespan="off",
                                     ssl_certfile=config.ssl_certfile, ssl_keyfile=config.ssl_keyfile, **common))
    print(f"m3fed server: Fleet API on {args.fleet_host}:{args.fleet_port}, control and runtime APIs on "
          f"{config.host}:{config.port}", flush=True)
    asyncio.run(_serve_all(control, fleet, on_stop=watch.stop))
    if watch.failure:
        print(f"m3fed server: error: {watch.failure}", file=sys.stderr, flush=True)
        sys.exit(1)


async def _serve_all(*servers, on_stop=None) -> None:
    import asyncio
    import signal

    def stop() -> None:
        if on_stop is not None:
            on_stop()
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.ensure_future(server.serve()) for server in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()  # one listener ending (its port taken, say) ends the other
    await asyncio.gather(*tasks)


# -- the operator's side: Flower's CLI against a SuperLink ------------------------------------------

def operator_home(state: Path, superlink: str = f"127.0.0.1:{CONTROL_PORT}") -> Path:
    """A private FLWR_HOME whose config.toml names the SuperLink's control listener (connection ``m3fed``).

    Plain HTTP: that listener is on the server host's loopback only, reached there or through an SSH
    tunnel (which encrypts); the public listener does not serve the Control API at all.
    """
    home = state / "operator-flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]",
             f"address = {json.dumps(superlink)}", "insecure = true"]
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


def register_site(state: Path, name: str, public_key: Path, *, superlink: str) -> int:
    check_public_key(public_key)
    sites = read_registry(state)
    if name in sites:
        raise DataError(_registry(state), f"site {name!r} is already registered (node {sites[name]['node_id']}); "
                                          "unregister it first")
    home = operator_home(state, superlink)
    node_id = int(flwr_cli(home, "supernode", "register", str(Path(public_key).resolve()), CONNECTION,
                           "--name", name)["node-id"])
    sites[name] = {"node_id": node_id, "public_key": Path(public_key).read_text(encoding="utf-8").strip()}
    _registry(state).write_text(json.dumps(sites, indent=2), encoding="utf-8")
    return node_id


def unregister_site(state: Path, name: str, *, superlink: str) -> int:
    sites = read_registry(state)
    if name not in sites:
        raise DataError(_registry(state), f"no site named {name!r} (registered: {', '.join(sites) or 'none'})")
    home = operator_home(state, superlink)
    flwr_cli(home, "supernode", "unregister", str(sites[name]["node_id"]), CONNECTION)
    node_id = sites.pop(name)["node_id"]
    _registry(state).write_text(json.dumps(sites, indent=2), encoding="utf-8")
    return node_id


if __name__ == "__main__":
    serve(sys.argv[1:])
