"""Real ``m3fed`` processes for the deployment tests: started in their own groups, stopped by PID,
and the TCP sockets each group listens on, read from /proc (no psutil in the environment)."""
from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

M3FED = str(Path(sys.executable).parent / "m3fed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited early with {proc.returncode}"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


def m3fed(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([M3FED, *args], capture_output=True, text=True, timeout=timeout)


class Processes:
    """Each process in its own group; ``stop_all`` ends every group by its leader's PID."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.started = logs, []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w", encoding="utf-8")
        proc = subprocess.Popen([M3FED, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(proc)
        return proc

    def stop(self, *procs: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
        """``sig`` to each leader (SIGTERM: it stops its children in order), then SIGKILL to what is left."""
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)
        for proc in procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            proc.wait(timeout=20)

    def stop_all(self) -> list[int]:
        """Stop every group; the leaders of groups that still have a process after a grace period."""
        self.stop(*self.started)
        deadline = time.monotonic() + 15  # a member killed last may not be reaped yet (its parent is gone)
        while (alive := [p.pid for p in self.started if _group_alive(p.pid)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return alive

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.getpgid(int(entry)) == pgid:
                pids.append(int(entry))
        except ProcessLookupError:
            pass
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return inodes


def _address(hex_address: str, v6: bool) -> str:
    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* print the address as 32-bit words in host (little-endian) order.
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw if v6 else raw[:4]))


def listening(pgid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by a process of group ``pgid``."""
    inodes = set().union(*(_socket_inodes(pid) for pid in _group(pgid)))
    found = set()
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                address, port = local.split(":")
                found.add((_address(address, v6), int(port, 16)))
    return found


def beyond_loopback(sockets: set[tuple[str, int]]) -> set[tuple[str, int]]:
    return {(a, p) for a, p in sockets if not ipaddress.ip_address(a).is_loopback}
