"""m3fed site start summarises the SuperNode's connection retries (client.admin.daemon.ConnectionLog):
one line while it waits, a warning only after a timeout, one line once connected."""
from __future__ import annotations

import io
import threading

from client.admin.daemon import REFUSED_KEY, ConnectionLog, _echo

RETRY = "\x1b[93mWARNING \x1b[0m:   Connection attempt failed, retrying in {:.2f} seconds\n"
START = "\x1b[92mINFO \x1b[0m:      Starting Flower SuperNode\n"
SUCCESS = "\x1b[92mINFO \x1b[0m:      Connection successful after 250.10 seconds and 14 tries.\n"
NODE_ID = "\x1b[92mINFO \x1b[0m:      SuperNode ID: 1683317421691748485\n"
WHO = "m3fed site hospital-a"


def _run(lines: list[tuple[float, str]], timeout: float = 120.0, quiet: bool = False) -> list[str]:
    log = ConnectionLog("hospital-a", "the SuperLink at fl.example.org:8000", timeout=timeout, quiet=quiet)
    return [out for now, line in lines for out in log(line, now)]


def test_retries_at_start_up_become_one_line_and_a_warning_per_timeout():
    # Prepare: the SuperLink comes up after 250 s; Flower retries with back-off (at most 20 s apart)
    retries = [(t, RETRY.format(t % 7)) for t in (1, 2, 4, 9, 20, 40, 60, 80, 100, 119, 121, 140, 200, 239, 242)]
    # Execute
    out = _run([(0, START), *retries, (250, SUCCESS), (250.1, NODE_ID)])
    # Assert: Flower's other lines pass, every retry is summarised, one warning per 120 s, one line when connected
    assert out == [
        START,
        f"{WHO}: waiting for the SuperLink at fl.example.org:8000 (retrying)\n",
        f"warning: {WHO}: still cannot reach the SuperLink at fl.example.org:8000 after 120 s: "
        "Connection attempt failed, retrying in 2.00 seconds\n",
        f"warning: {WHO}: still cannot reach the SuperLink at fl.example.org:8000 after 241 s: "
        "Connection attempt failed, retrying in 4.00 seconds\n",
        f"{WHO}: connected to the SuperLink at fl.example.org:8000 after 249 s\n",
        NODE_ID,
    ]


def test_a_first_try_connection_and_a_later_loss_each_say_so_once():
    out = _run([(0, START), (1, NODE_ID), (500, RETRY.format(0.5)), (501, RETRY.format(1.5)), (503, SUCCESS),
                (600, "INFO :      [RUN 12]\n")])
    assert out == [START, f"{WHO}: connected to the SuperLink at fl.example.org:8000\n", NODE_ID,
                   f"{WHO}: lost the SuperLink at fl.example.org:8000 (retrying)\n",
                   f"{WHO}: connected to the SuperLink at fl.example.org:8000 after 3 s\n", "INFO :      [RUN 12]\n"]


def test_the_echo_still_sees_a_refused_key_and_uses_the_filter():
    refused, out, clock = threading.Event(), io.StringIO(), iter([0.0, 1.0, 2.0, 3.0]).__next__
    stream = io.StringIO(RETRY.format(0.1) + RETRY.format(0.2) + f"ERROR : {REFUSED_KEY}: the key is unknown\n")
    _echo(stream, refused, ConnectionLog("hospital-a", "the SuperLink at fl.example.org:8000"), clock=clock, out=out)
    assert refused.is_set()
    assert out.getvalue() == (f"{WHO}: waiting for the SuperLink at fl.example.org:8000 (retrying)\n"
                              f"ERROR : {REFUSED_KEY}: the key is unknown\n")


def test_the_guard_waiting_for_the_supernode_says_nothing_unless_it_lasts():
    lines = [(0, RETRY.format(0.66)), (0.7, SUCCESS), (300, RETRY.format(1)), (421, RETRY.format(2))]
    assert _run(lines, quiet=True) == [f"warning: {WHO}: still cannot reach the SuperLink at fl.example.org:8000 "
                                       "after 121 s: Connection attempt failed, retrying in 2.00 seconds\n"]
