"""``m3fed server start`` never leaves a run silently pending: its SuperExec is watched."""
from __future__ import annotations

import asyncio

from server.runtime_watch import ACQUIRE, RuntimeWatch


class Proc:
    def __init__(self, code=None) -> None:
        self.returncode = code

    def poll(self):
        return self.returncode


def test_a_working_runtime_passes():
    watch = RuntimeWatch(9093, start_grace=60, silence=30)
    watch._process, watch._last = Proc(), 100.0
    assert watch.check(110.0, started=0.0) is None


def test_an_exited_superexec_is_named_with_its_status():
    watch = RuntimeWatch(9093)
    watch._process = Proc(3)
    assert "exited with status 3" in watch.check(1.0, started=0.0)


def test_a_superexec_that_never_reached_the_runtime_api_fails_after_the_grace():
    watch = RuntimeWatch(9093, start_grace=60)
    watch._process = Proc()
    assert watch.check(59.0, started=0.0) is None
    message = watch.check(61.0, started=0.0)
    assert "has not reached the runtime API on 127.0.0.1:9093" in message


def test_a_superexec_gone_silent_fails():
    watch = RuntimeWatch(9093, silence=30)
    watch._process, watch._last = Proc(), 100.0
    assert "has not polled" in watch.check(131.0, started=0.0)


def _call(app, path: str):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)
    asyncio.run(app({"type": "http", "path": path}, receive, send))
    return sent


def test_only_an_answered_acquire_task_counts():
    def app_with(status):
        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": status})
        return app
    watch = RuntimeWatch(9093)
    _call(watch.gate(app_with(401)), ACQUIRE)  # an unsigned caller is refused: not the SuperExec working
    assert watch._last is None
    _call(watch.gate(app_with(200)), "/v1/control/list-runs")
    assert watch._last is None
    _call(watch.gate(app_with(200)), ACQUIRE)
    assert watch._last is not None
