"""``m3fed server start`` stops loudly when its own runtime cannot run ServerApps (never a silent pending)."""
from __future__ import annotations

import os
import signal
import time

from tests.server.processes import Processes, free_port, wait_port


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat", encoding="utf-8").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry), cmdline))
    return found


def test_the_server_exits_1_naming_the_cause_when_its_superexec_dies(tmp_path):
    procs = Processes(tmp_path)
    port, control = free_port(), free_port()
    server = procs.start("superlink", "server", "start", "--insecure", "--state", str(tmp_path / "state"),
                         "--host", "127.0.0.1", "--port", str(port), "--control-port", str(control))
    try:
        wait_port(control, server, 120)
        deadline = time.monotonic() + 60
        while not (superexec := [p for p, cmd in _children(server.pid) if "flower-superexec" in cmd]):
            assert time.monotonic() < deadline, "no SuperExec started"
            time.sleep(0.5)
        os.kill(superexec[0], signal.SIGKILL)
        assert server.wait(timeout=90) == 1
        log = procs.log("superlink")
        assert "error: the SuperExec, which starts every ServerApp, exited with status -9" in log
    finally:
        assert not procs.stop_all()


def test_a_requested_stop_is_not_an_error(tmp_path):
    procs = Processes(tmp_path)
    port, control = free_port(), free_port()
    server = procs.start("superlink", "server", "start", "--insecure", "--state", str(tmp_path / "state"),
                         "--host", "127.0.0.1", "--port", str(port), "--control-port", str(control))
    try:
        wait_port(control, server, 120)
        time.sleep(3)  # the SuperExec is up and polling
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert "error:" not in procs.log("superlink")
    finally:
        assert not procs.stop_all()
