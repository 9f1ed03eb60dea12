"""Live progress of a simulated run: one JSON line per event, appended by server and sites.

Only a simulation sets the run config ``progress-file`` (every virtual site shares the machine);
on a real SuperNode it is empty and nothing is written.
"""
from __future__ import annotations

import json
import os
import time


def report_progress(path: str, **event) -> None:
    if not path:
        return
    line = json.dumps({"time": time.time(), **event}) + "\n"
    # One write per line in append mode: concurrent writers never interleave within a line.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_progress(path: str, offset: int = 0) -> tuple[list[dict], int]:
    """Events after byte ``offset`` (complete lines only) and the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = data[:data.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()], offset + len(complete)
