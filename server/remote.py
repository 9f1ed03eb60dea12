"""``m3fed run``: submit a training run to the SuperLink (``flwr run`` underneath) and follow it.

The SuperLink's Control API listens on the server host's loopback only (``server/superlink.py``),
so ``m3fed run`` runs there, or elsewhere through an SSH tunnel to it. The ServerApp writes
``results.json`` (``m3fed.results/1``), checkpoints and the round log to ``--out``, a folder *on the
SuperLink's host*. In a deployment the server holds no patient data, so ``data`` is empty: every
round is scored by the sites on their own test patients (``client-eval-every = 1``) and the results
carry that federated evaluation. ``flwr run`` exits 0 even when the app failed, so the run's final
status is read back.

Every submission is recorded in the operator state (``submitted-runs.json``: run folder -> run
config, app folder, bundle hash, run id), so ``m3fed run --resume RUNDIR`` can submit the same run
again with ``resume = true`` after the SuperLink's host died: the ServerApp continues after the last
round it checkpointed in RUNDIR (``server/run_state.py``), and Flower's record of the interrupted
run is stopped first.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from client.errors import DataError
from server.superlink import CONNECTION, flower_env, flwr_cli, operator_home
from shared_model.app import APP_DIR, toml_value
from shared_model.run_config import RunConfig

SUBMITTED = "submitted-runs.json"
START_TIMEOUT = 180.0  # seconds a submitted run may stay pending before m3fed run stops it


def deployment_run_config(out: Path, overrides: dict) -> dict:
    """The whole run config a deployment submits (``RunConfig``'s defaults, then ``overrides``): checked
    here, so a mistyped ``--run-config`` key or value is refused before anything is submitted."""
    given = {"run-dir": str(Path(out).resolve()), "data": "", "client-eval-every": 1, **overrides}
    try:
        return RunConfig.from_run_config(given).to_run_config()
    except ValueError as exc:
        raise DataError("--run-config", str(exc)) from None


def _submitted(state: Path) -> dict[str, dict]:
    path = Path(state) / SUBMITTED
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _record(state: Path, run_dir: str, entry: dict) -> None:
    runs = _submitted(state)
    runs[run_dir] = {**runs.get(run_dir, {}), **entry}
    path = Path(state) / SUBMITTED
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(runs, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def submit_run(*, state: Path, superlink: str, out: Path, run_config: dict, app: Path = APP_DIR,
               timeout: float = 6 * 3600) -> dict:
    """Start the run, stream its log to stdout, wait for the end; returns Flower's run record."""
    from client.admin.daemon import app_hash

    config = deployment_run_config(out, run_config)
    _record(state, config["run-dir"], {"run_config": config, "app": str(Path(app).resolve()),
                                       "fab_hash": app_hash(app), "run_id": None})
    return _submit(state=state, superlink=superlink, config=config, app=app, timeout=timeout)


def resume_run(*, state: Path, superlink: str, run_dir: Path, overrides: dict, timeout: float = 6 * 3600) -> dict:
    """Submit the run recorded for ``run_dir`` again, ``resume = true``: it goes on after its last checkpoint."""
    from client.admin.daemon import app_hash

    key = str(Path(run_dir).resolve())
    entry = _submitted(state).get(key)
    if entry is None:
        raise DataError(Path(state) / SUBMITTED, f"no run was submitted for {key} from this operator state "
                                                 "(resume with the --state the run was submitted with)")
    if Path(key).is_dir() and not (Path(key) / "state.json").is_file():
        raise DataError(key, "no completed round to resume from (state.json is missing): submit the run again")
    if app_hash(entry["app"]) != entry["fab_hash"]:
        raise DataError(entry["app"], f"the app bundle has changed since the run started (it was sha256:"
                                      f"{entry['fab_hash']}); the sites approved that one: restore it to resume")
    if entry.get("run_id") is not None:  # Flower may still list the interrupted run as running
        home = operator_home(state, superlink)
        try:
            flwr_cli(home, "stop", str(entry["run_id"]), CONNECTION)
        except DataError:
            pass  # already finished or failed: nothing to stop
    config = deployment_run_config(Path(key), {**entry["run_config"], **overrides})
    _record(state, key, {"run_config": config})
    config["resume"] = True
    return _submit(state=state, superlink=superlink, config=config, app=Path(entry["app"]), timeout=timeout)


def _submit(*, state: Path, superlink: str, config: dict, app: Path, timeout: float,
            start_timeout: float = START_TIMEOUT) -> dict:
    home = operator_home(state, superlink)
    overrides = " ".join(f"{k}={toml_value(v)}" for k, v in config.items())
    log_path = Path(state) / "last-run.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "flwr"), "run", str(Path(app).resolve()),
                                 CONNECTION, "--stream", "--run-config", overrides],
                                env=flower_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", cwd=home)
        deadline = time.monotonic() + timeout
        run_id, watch = None, None
        for line in proc.stdout:
            log.write(line)
            sys.stdout.write(line)
            sys.stdout.flush()
            if run_id is None and (run_id := _run_id(line)) is not None:
                _record(state, config["run-dir"], {"run_id": run_id})
                watch = StartWatch(home, run_id, proc, start_timeout)
            if time.monotonic() > deadline:
                proc.kill()
                break
        proc.wait()
    if run_id is None:
        raise DataError(log_path, "the SuperLink did not start the run (see this log for Flower's reason)")
    if watch is not None and watch.failure:
        raise DataError(f"run {run_id}", watch.failure)
    runs = flwr_cli(home, "ls", CONNECTION, "--run-id", str(run_id)).get("runs", [])
    record = runs[0] if runs else {"run-id": run_id, "status": "unknown"}
    if record.get("status") != "finished:completed":
        raise DataError(log_path, f"run {run_id} ended as {record.get('status')!r}: see this log and the "
                                  f"SuperLink's log for the reason; `m3fed run --resume {config['run-dir']}` "
                                  "continues after its last completed round")
    return record


class StartWatch:
    """A submitted run that no ServerApp has taken within ``seconds`` is stopped, and the reason said.

    ``pending`` means the SuperLink's SuperExec has not started its ServerApp (``m3fed server start``
    stops itself when its SuperExec cannot work, so this is a SuperLink that is down or overloaded).
    """

    def __init__(self, home: Path, run_id: int, proc: subprocess.Popen, seconds: float, *, every: float = 5.0) -> None:
        self.home, self.run_id, self.proc, self.seconds, self.every = home, run_id, proc, seconds, every
        self.failure: str | None = None
        threading.Thread(target=self._watch, daemon=True, name="m3fed-start-watch").start()

    def _status(self) -> str:
        try:
            runs = flwr_cli(self.home, "ls", CONNECTION, "--run-id", str(self.run_id)).get("runs", [])
        except DataError as exc:
            return f"unknown ({exc})"
        return str(runs[0].get("status")) if runs else "unknown"

    def _watch(self) -> None:
        started = time.monotonic()
        while self.proc.poll() is None:
            status = self._status()
            if not status.startswith(("pending", "starting", "unknown")):
                return  # running or finished: the stream reports the rest
            if time.monotonic() - started > self.seconds:
                self.failure = (f"not started after {self.seconds:.0f} s (status {status!r}): the SuperLink's "
                                "SuperExec has not taken it. Check that `m3fed server start` is running and its log "
                                "(<state>/logs/superlink.log); the run was stopped, submit it again")
                try:
                    flwr_cli(self.home, "stop", str(self.run_id), CONNECTION)
                except DataError:
                    pass
                self.proc.kill()
                return
            time.sleep(self.every)


def recorded_run_id(state: Path, run_dir: Path) -> int:
    """The Flower run id ``m3fed run`` recorded for ``run_dir`` (its latest submission)."""
    key = str(Path(run_dir).resolve())
    entry = _submitted(state).get(key)
    if entry is None or entry.get("run_id") is None:
        raise DataError(Path(state) / SUBMITTED, f"no run was started for {key} from this operator state "
                                                 "(give the --state the run was submitted with)")
    return int(entry["run_id"])


def _run_id(line: str) -> int | None:
    match = re.search(r"Successfully started run (\d+)", line)
    return int(match.group(1)) if match else None
