"""``m3fed run`` stops a run that no ServerApp has taken, and says why (never a silent pending)."""
from __future__ import annotations

import time

import server.remote as remote


class Stream:
    def __init__(self) -> None:
        self.killed = False

    def poll(self):
        return -9 if self.killed else None

    def kill(self) -> None:
        self.killed = True


def _flwr(statuses: list[str], calls: list):
    def flwr_cli(home, *args, **_):
        calls.append(args)
        if args[0] == "ls":
            return {"runs": [{"status": statuses.pop(0) if len(statuses) > 1 else statuses[0]}]}
        return {"success": True}
    return flwr_cli


def _wait(stream: Stream, watch) -> None:
    deadline = time.monotonic() + 10
    while stream.poll() is None and time.monotonic() < deadline and not watch.failure:
        time.sleep(0.02)


def test_a_run_pending_past_the_limit_is_stopped_with_the_reason(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(remote, "flwr_cli", _flwr(["pending"], calls))
    stream = Stream()
    watch = remote.StartWatch(tmp_path, 7, stream, 0.2, every=0.05)
    _wait(stream, watch)
    time.sleep(0.1)
    assert stream.killed and "not started after 0 s (status 'pending')" in watch.failure
    assert ("stop", "7", remote.CONNECTION) in calls


def test_a_run_that_starts_is_left_alone(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(remote, "flwr_cli", _flwr(["pending", "running"], calls))
    stream = Stream()
    watch = remote.StartWatch(tmp_path, 7, stream, 0.5, every=0.05)
    time.sleep(1.0)
    assert not stream.killed and watch.failure is None
    assert not [c for c in calls if c[0] == "stop"]
