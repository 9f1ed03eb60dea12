"""``m3fed sim --ray-address``: the virtual sites run on an existing Ray cluster (a head started here
on loopback, stopped by PID), and a Ray cluster someone else started is never joined by accident."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sim.flower_launch import pids_with_env, stop_processes
from sim.simulate import run_simulation
from tests.sim.federations import fed_config

pytestmark = pytest.mark.end_to_end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_session(sid: int) -> list[int]:
    """Every process of a session: what ``ray start`` and its daemons started. (Not found by their
    environment: Ray's agents rename themselves, which overwrites /proc/PID/environ.)"""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getsid(int(entry)) == sid:
                pids.append(int(entry))
        except OSError:  # gone meanwhile
            continue
    return pids


@pytest.fixture
def ray_head():
    """``ray start --head`` on loopback in a session of its own and a temp dir of its own (short: Ray's
    socket paths have a length limit); yields (address, temp dir); every process of that session is
    stopped by PID afterwards."""
    port, temp = _free_port(), tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray = str(Path(sys.executable).parent / "ray")
    start = subprocess.Popen([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                              "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false", "--temp-dir",
                              temp, "--disable-usage-stats"], env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = start.communicate(timeout=120)
        assert start.returncode == 0, output.decode(errors="replace")
        yield f"127.0.0.1:{port}", Path(temp)
    finally:
        stop_processes(lambda: _in_session(start.pid), grace=5)
        deadline = time.monotonic() + 20  # SIGKILLed processes take a moment to leave /proc
        while _in_session(start.pid) and time.monotonic() < deadline:
            stop_processes(lambda: _in_session(start.pid), grace=1)
        left = _in_session(start.pid)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def test_a_simulation_runs_on_an_existing_ray_cluster_and_leaves_it_as_it_was(ray_head, fed_data, tmp_path):
    address, temp = ray_head
    out = tmp_path / "run"
    cfg = fed_config(fed_data, out, sites=2, rounds=1, text_only_sites=0, languages=("en", "zh"),
                     max_records_per_site=24, cpus_per_site=1, ray_address=address)
    doc = run_simulation(cfg)
    assert [r["round"] for r in doc["rounds"]] == [1]
    assert all(s["status"] == "ok" for s in doc["rounds"][0]["sites"].values())
    assert doc["site_records"] == {"site-1": 24, "site-2": 24}
    # The sites' ClientApp actors were the cluster's workers: their logs are in the head's session.
    logs = [p for p in temp.glob("session_*/logs/*") if p.is_file()]
    assert any("ClientAppActor" in p.read_text(errors="replace") for p in logs)
    # The run stopped what it started (driver, SuperLink) and left the cluster up for the next run.
    assert not pids_with_env("FLWR_HOME", str(out / ".flwr"))
    status = subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address", address],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr


def test_a_ray_address_that_does_not_answer_is_refused_in_seconds(tmp_path, capsys):
    from sim.m3fed_command import main

    for address, message in ((f"127.0.0.1:{_free_port()}", "nothing answers there"),
                             ("localhost", "--ray-address must be HOST:PORT")):
        code = main(["sim", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--ray-address", address])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "run").exists()  # refused before the sites were partitioned or Ray started


def test_without_an_address_a_run_never_joins_a_cluster_started_on_this_machine(tmp_path):
    from sim.flower_launch import simulation_env

    assert simulation_env(tmp_path, "10.0.0.5:6379")["RAY_ADDRESS"] == "10.0.0.5:6379"
    env = simulation_env(tmp_path)
    # ray.init() with no address would join the machine's latest `ray start` cluster; "local" makes Ray
    # start an instance of the run's own (None below), whatever the user's shell has in RAY_ADDRESS.
    code = "import os, ray._private.services as s; print(s.canonicalize_bootstrap_address(os.environ['RAY_ADDRESS']))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "None", out.stderr
