"""``m3fed run``: submit a training run to a remote SuperLink (``flwr run`` underneath) and follow it.

The ServerApp writes ``results.json`` (``m3fed.results/1``), checkpoints and the round log to
``--out``, a folder *on the SuperLink's host* (the ServerApp runs there). In a deployment the
server holds no patient data, so ``data`` is empty: every round is scored by the sites on their
own test patients (``client-eval-every = 1``) and the results carry that federated evaluation.
``flwr run`` exits 0 even when the app failed, so the run's final status is read back.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from client.errors import DataError
from server.superlink import CONNECTION, flower_env, flwr_cli, operator_home
from sim.federation import APP_DIR, _toml_value


def deployment_run_config(out: Path, overrides: dict) -> dict:
    return {"run-dir": str(Path(out).resolve()), "data": "", "client-eval-every": 1, **overrides}


def submit_run(*, state: Path, superlink: str, ca: Path | None, insecure: bool, out: Path, run_config: dict,
               app: Path = APP_DIR, timeout: float = 6 * 3600) -> dict:
    """Start the run, stream its log to stdout, wait for the end; returns Flower's run record."""
    home = operator_home(state, superlink, ca=ca, insecure=insecure)
    overrides = " ".join(f"{k}={_toml_value(v)}" for k, v in deployment_run_config(out, run_config).items())
    log_path = Path(state) / "last-run.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "flwr"), "run", str(Path(app).resolve()),
                                 CONNECTION, "--stream", "--run-config", overrides],
                                env=flower_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", cwd=home)
        deadline = time.monotonic() + timeout
        run_id = None
        for line in proc.stdout:
            log.write(line)
            sys.stdout.write(line)
            sys.stdout.flush()
            run_id = run_id or _run_id(line)
            if time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait()
    if run_id is None:
        raise DataError(log_path, "the SuperLink did not start the run (see this log for Flower's reason)")
    runs = flwr_cli(home, "ls", CONNECTION, "--run-id", str(run_id)).get("runs", [])
    record = runs[0] if runs else {"run-id": run_id, "status": "unknown"}
    if record.get("status") != "finished:completed":
        raise DataError(log_path, f"run {run_id} ended as {record.get('status')!r}: see this log and the "
                                  "SuperLink's log for the reason")
    return record


def _run_id(line: str) -> int | None:
    match = re.search(r"Successfully started run (\d+)", line)
    return int(match.group(1)) if match else None
