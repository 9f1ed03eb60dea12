"""Run a simulated federation through Flower's own simulation runtime (``flwr run``, Ray).

Each run gets a private FLWR_HOME and free loopback ports, run-time dependency installation off,
telemetry off; the managed local SuperLink that ``flwr run`` starts is stopped by PID after the
run, and the run's final status is read back (``flwr run`` exits 0 even when the app failed).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from server.superlink import flower_env
from shared_model.app import APP_DIR, toml_value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulation_env(flwr_home: Path, ray_address: str = "") -> dict[str, str]:
    """``flower_env`` plus free ports for the local SuperLink that ``flwr run`` starts, and the Ray the
    simulation runs on: ``ray_address``'s cluster, or (none) a Ray instance of this run's own, never a
    cluster someone else started on this machine (which ``ray.init()`` would otherwise join)."""
    env = flower_env(flwr_home)
    env.update({"FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(_free_port()),
                "FLWR_LOCAL_CONTROL_API_PORT": str(_free_port()), "RAY_ADDRESS": ray_address or "local"})
    return env


def superlink_pids(flwr_home: Path) -> list[int]:
    """Every process this run started (SuperLink, SuperExec, simulation, Ray workers): they all
    inherit the run's private FLWR_HOME, which no other process has."""
    return pids_with_env("FLWR_HOME", str(flwr_home))


def pids_with_env(name: str, value: str) -> list[int]:
    """The processes (other than this one) whose environment has ``name=value``: what a process and
    every process it started carry, daemons included."""
    mine = f"{name}={value}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if mine in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def stop_processes(pids_now, *, grace: float = 1.0) -> None:
    """SIGTERM what ``pids_now()`` lists, then SIGKILL what is still there after ``grace`` seconds."""
    _signal_all(pids_now(), signal.SIGTERM)
    time.sleep(grace)
    _signal_all(pids_now(), signal.SIGKILL)


def run_flower(run_config: dict, *, num_sites: int, flwr_home: Path, timeout: float = 3600, on_tick=None,
               resources: str = "client-resources-num-cpus=1", ray_address: str = "") -> dict:
    """``flwr run`` the app on the local simulation runtime; returns the run's status record.
    ``resources``: the client resources part of ``--federation-config`` (sim.resources).
    ``ray_address``: run the virtual sites on that Ray cluster (``simulation_env``)."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    env = simulation_env(flwr_home, ray_address)
    flwr = str(Path(sys.executable).parent / "flwr")
    overrides = " ".join(f"{k}={toml_value(v)}" for k, v in run_config.items())
    federation = f"num-supernodes={num_sites} {resources}"
    log = open(flwr_home / "flwr-run.log", "w", encoding="utf-8")
    try:
        proc = subprocess.Popen([flwr, "run", str(APP_DIR), "local", "--stream", "--run-config", overrides,
                                 "--federation-config", federation], env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(flwr_home))
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                break
            if on_tick:
                on_tick()
            time.sleep(0.5)
        proc.wait()
        listing = subprocess.run([flwr, "ls", "local", "--format", "json"], env=env, capture_output=True,
                                 text=True, timeout=120, cwd=str(flwr_home))
        runs = json.loads(listing.stdout or "{}").get("runs", [])
        # A resumed run shares FLWR_HOME with the run it resumes: find this one by its id.
        started = re.search(r"Successfully started run (\d+)", (flwr_home / "flwr-run.log").read_text())
        mine = [r for r in runs if started and str(r.get("run-id")) == started.group(1)]
        return mine[0] if mine else {"status": "not started (see flwr-run.log)"}
    finally:
        log.close()
        stop_processes(lambda: superlink_pids(flwr_home))


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # already gone
            pass
