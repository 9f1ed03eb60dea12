"""A finished run's deliverables, served on the loopback control listener and fetched by the operator."""
from __future__ import annotations

import io
import socket
import tarfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import uvicorn

from client.errors import DataError
from server.artifacts import DELIVERABLES, artifact_route, fetch, pack


class LinkState:
    def __init__(self, runs: dict) -> None:
        self.runs = runs

    def get_run_info(self, *, run_ids):
        return [self.runs[i] for i in run_ids if i in self.runs]


def _run(run_dir: Path, status: str, sub: str = "") -> SimpleNamespace:
    return SimpleNamespace(override_config={"run-dir": str(run_dir)},
                           status=SimpleNamespace(status=status, sub_status=sub))


TWENTY_DIGITS = 10514866984651047237  # a real run id: Flower's ids are uint64, nearly half have 20 digits


@pytest.fixture
def served(tmp_path):
    done, running = tmp_path / "done", tmp_path / "running"
    for folder in (done, running):
        folder.mkdir()
        (folder / "results.json").write_text('{"final": {"auc_macro": 0.6}}')
    (done / "model.safetensors").write_bytes(b"weights")
    (done / "strategy.safetensors").write_bytes(b"not a deliverable")
    (done / "receipts").mkdir()
    state = LinkState({1: _run(done, "finished", "completed"), 2: _run(running, "running"),
                       TWENTY_DIGITS: _run(done, "finished", "completed")})

    async def rest(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(artifact_route(rest, lambda: state), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"127.0.0.1:{port}", tmp_path
    server.should_exit = True
    thread.join(10)


def test_a_finished_run_is_fetched_deliverables_only(served):
    address, tmp = served
    names = fetch(address, 1, tmp / "operator")
    assert sorted(names) == ["model.safetensors", "results.json"]
    assert (tmp / "operator" / "model.safetensors").read_bytes() == b"weights"
    assert not (tmp / "operator" / "strategy.safetensors").exists()


def test_every_uint64_run_id_is_served_and_nothing_past_it(served):
    address, tmp = served
    assert "results.json" in fetch(address, TWENTY_DIGITS, tmp / "operator")
    with pytest.raises(DataError, match="no run folder"):
        fetch(address, 2**64 + 1, tmp / "other")


def test_a_running_or_unknown_run_is_refused_with_the_reason(served):
    address, tmp = served
    with pytest.raises(DataError, match="the run is running"):
        fetch(address, 2, tmp / "operator")
    with pytest.raises(DataError, match="no run folder"):
        fetch(address, 99, tmp / "operator")
    assert not (tmp / "operator").exists()


def test_an_unreachable_superlink_says_to_open_the_tunnel(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="SSH tunnel"):
        fetch(f"127.0.0.1:{port}", 1, tmp_path / "x", timeout=5)


def test_pack_holds_only_the_deliverables(tmp_path):
    for name in (*DELIVERABLES, "state.json", "ledger.jsonl"):
        (tmp_path / name).write_text("x")
    with tarfile.open(fileobj=io.BytesIO(pack(tmp_path)), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == sorted(DELIVERABLES)
