"""``m3fed run --resume RUNDIR`` after the SuperLink's host died, real processes on loopback.

A TLS SuperLink, two site daemons with a DP policy, a 2-round run; the whole server process group
(SuperLink, SuperExec, ServerApp) is killed with SIGKILL once round 1's checkpoint is on disk, the
SuperLink is started again on the same state, and ``m3fed run --resume`` finishes the run: every
round once in results.json, every site's ledger verifying and charging each round once. Every
process is stopped by PID.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from client.admin.daemon import app_hash
from client.admin.keys import site_keygen
from server.pki import init_ca, issue_server
from shared_model.app import APP_DIR
from sim.simulate import SimConfig, prepare_sites
from sim.synth import generate
from tests.server.processes import M3FED, Processes, free_port, m3fed, wait_port

SITES = ("site-1", "site-2")
ROUNDS = 2


@pytest.fixture
def consortium(tmp_path):
    certs, keys = tmp_path / "certs", tmp_path / "keys"
    init_ca(certs, name="test consortium")
    issue_server(certs, hosts=["127.0.0.1", "localhost"])
    data = tmp_path / "data"
    generate(data, patients=40, seed=7, difficulty=0.0)
    prepare_sites(SimConfig(data=str(data), out=str(tmp_path / "federation"), sites=2, languages=("en", "zh"),
                            seed=0), tmp_path / "federation")
    policy = tmp_path / "privacy.yaml"
    policy.write_text("unit: record\ntarget_epsilon: 50.0\ntarget_delta: 1.0e-5\naccountant: rdp\n"
                      "max_grad_norm: 1.0\nnoise_multiplier: 1.0\nbatch_size: 8\n"
                      "release: [num-examples, train-loss, eval-metrics]\n")
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__", "*.egg-info",
                                                                ".pytest_cache", ".hypothesis", "build", "tests"))
    procs = Processes(tmp_path)
    port, control = free_port(), free_port()
    server_args = ("server", "start", "--state", str(tmp_path / "server"), "--certs", str(certs), "--host",
                   "127.0.0.1", "--port", str(port), "--control-port", str(control))
    env = {"root": tmp_path, "procs": procs, "port": port, "control": control, "server_args": server_args,
           "app": app, "connection": ["--superlink", f"127.0.0.1:{control}", "--state", str(tmp_path / "server")]}
    try:
        env["server"] = procs.start("superlink", *server_args)
        wait_port(port, env["server"])
        wait_port(control, env["server"])
        for name in SITES:
            site_keygen(keys / name)
            assert m3fed("server", "register-site", name, str(keys / f"{name}.pub"), *env["connection"]).returncode == 0
            spec = {"site": name, "superlink": f"127.0.0.1:{port}", "ca_certificate": str(certs / "ca.crt"),
                    "private_key": str(keys / name), "data": str(tmp_path / "federation" / "sites" / name /
                                                                 "manifest.jsonl"),
                    "languages": ["zh" if name == "site-2" else "en"], "modalities": ["CXR", "CT"],
                    "approved_apps": [app_hash(app)], "state_dir": str(tmp_path / "site-state" / name),
                    "privacy_policy": str(policy), "runtime_port": free_port()}
            (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
            procs.start(name, "site", "start", "--config", str(tmp_path / f"{name}.yaml"))
        yield env
    finally:
        assert not procs.stop_all()


def _wait_for_round(run_dir, server_round: int, proc: subprocess.Popen, seconds: float = 900) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = run_dir / "state.json"
        if state.is_file() and json.loads(state.read_text(encoding="utf-8"))["round"] >= server_round:
            return
        assert proc.poll() is None, f"m3fed run ended ({proc.returncode}) before round {server_round}'s checkpoint"
        time.sleep(1)
    raise AssertionError(f"no checkpoint of round {server_round} after {seconds} s")


@pytest.mark.slow  # 2 rounds of a 2-site DP federation, killed and resumed: minutes (see the README)
@pytest.mark.timeout(2400)
def test_a_run_resumes_after_the_superlink_host_dies(consortium):
    env, run_dir = consortium, consortium["root"] / "run"
    procs = env["procs"]
    with open(env["root"] / "run-1.log", "w", encoding="utf-8") as log:
        first = subprocess.Popen([M3FED, "run", *env["connection"], "--app", str(env["app"]), "--out", str(run_dir),
                                  "--rounds", str(ROUNDS), "--schedule", "alternate", "--local-epochs", "1",
                                  "--run-config", "batch-size=16",
                                  "--run-config", "round-timeout=600", "--run-config", f"client-eval-every={ROUNDS}"],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.started.append(first)
        _wait_for_round(run_dir, 1, first)
        procs.stop(env["server"], sig=signal.SIGKILL)  # the host dies: SuperLink, SuperExec, ServerApp at once
        assert first.wait(timeout=300) != 0
    restarted = procs.start("superlink-restarted", *env["server_args"])
    wait_port(env["port"], restarted)
    wait_port(env["control"], restarted)
    done = m3fed("run", *env["connection"], "--resume", str(run_dir), timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert [r["round"] for r in doc["rounds"]] == list(range(1, ROUNDS + 1))  # none lost, none repeated
    assert doc["config"]["resume"] is True and doc["config"]["num-server-rounds"] == ROUNDS
    # The schedule goes on where it stopped: round 2 of "alternate" is report generation.
    assert [r["objective"] for r in doc["rounds"]] == ["contrastive", "report-generation"]
    assert all(r["sites"]["site-1"]["status"] == "ok" for r in doc["rounds"]), json.dumps(doc["rounds"])
    assert doc["rounds"][1]["sites"]["site-2"]["status"] == "ok"  # site-2 (zh) has no images for round 1
    for name in SITES:
        ledger = env["root"] / "site-state" / name / "ledger.jsonl"
        verified = m3fed("privacy", "verify", "--ledger", str(ledger))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        charged = [e["round"] for e in map(json.loads, ledger.read_text().splitlines()) if "round" in e]
        assert charged == sorted(set(charged)), f"{name} charged a round twice: {charged}"
