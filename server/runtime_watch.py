"""The SuperLink's own runtime must be alive, or ``m3fed server start`` stops loudly.

Every ServerApp is started by the SuperLink's SuperExec, which polls the Runtime API
(``acquire-task``, about once a second) on the loopback control listener. If it cannot (it died,
its secret does not match, it cannot reach the listener), a submitted run would stay ``pending``
forever while the SuperLink itself looks healthy. So the control listener notes every answered
``acquire-task``, and a watchdog ends the server with an error naming the cause when the SuperExec
has exited, or has not been answered for ``silence`` seconds (``start_grace`` after start-up): a
service manager then restarts it, and the operator sees why in its log.
"""
from __future__ import annotations

import os
import signal
import threading
import time

ACQUIRE = "/v1/runtime/acquire-task"


class RuntimeWatch:
    def __init__(self, control_port: int, *, start_grace: float = 180.0, silence: float = 120.0,
                 every: float = 5.0) -> None:
        self.control_port, self.start_grace, self.silence, self.every = control_port, start_grace, silence, every
        self.failure: str | None = None
        self.stopping = False  # a requested stop: the SuperExec ending then is expected
        self._last: float | None = None  # monotonic time of the last acquire-task answered 200
        self._process = None

    def gate(self, app):
        """``app`` with every successful ``acquire-task`` answer noted."""
        async def noted(scope, receive, send) -> None:
            if scope["type"] != "http" or scope.get("path") != ACQUIRE:
                await app(scope, receive, send)
                return

            async def sending(message) -> None:
                if message.get("type") == "http.response.start" and message.get("status") == 200:
                    self._last = time.monotonic()
                await send(message)
            await app(scope, receive, sending)
        return noted

    def stop(self) -> None:
        self.stopping = True

    def start(self, process) -> None:
        self._process, started = process, time.monotonic()
        threading.Thread(target=self._watch, args=(started,), daemon=True, name="m3fed-runtime-watch").start()

    def _watch(self, started: float) -> None:
        while self.failure is None:
            time.sleep(self.every)
            if self.stopping:
                return
            self.failure = self.check(time.monotonic(), started)
        # Both listeners stop on SIGTERM (server.superlink._serve_all); serve() then exits 1 with the reason.
        os.kill(os.getpid(), signal.SIGTERM)

    def check(self, now: float, started: float) -> str | None:
        """Why the runtime is not working (None: it is)."""
        where = f"the runtime API on 127.0.0.1:{self.control_port}"
        if self._process is not None and self._process.poll() is not None:
            return (f"the SuperExec, which starts every ServerApp, exited with status {self._process.returncode}: "
                    "no run can start. Stopping the SuperLink (its log above says why; a service manager restarts "
                    "it)")
        if self._last is None and now - started > self.start_grace:
            return (f"the SuperExec has not reached {where} within {self.start_grace:.0f} s of start-up: no run "
                    "could start (a port or secret problem; its messages are above). Stopping the SuperLink")
        if self._last is not None and now - self._last > self.silence:
            return (f"the SuperExec has not polled {where} for {now - self._last:.0f} s: runs would stay pending. "
                    "Stopping the SuperLink")
        return None
