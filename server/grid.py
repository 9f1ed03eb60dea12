"""Grids that wrap Flower's: a delegating base, and one that collects replies as they arrive.

In deployment, flwr 1.42's ServerApp grid (``flwr.superlink.grid.http_grid``) sleeps 3 s between
pulls in ``send_and_receive``, so every exchange waits on average 1.5 s after its last reply, four
times per SecAgg+ round (its four stages). ``PromptGrid`` pulls with a short back-off instead
(Flower's own push/pull calls, nothing else). The simulation's in-memory grid already polls
every 0.1 s; there it changes nothing measurable.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from flwr.app import Message
from flwr.serverapp import Grid


class DelegatingGrid(Grid):
    """Everything passes through to ``grid``; subclasses change what they need."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def set_run(self, run) -> None:
        self.grid.set_run(run)

    @property
    def run(self):
        return self.grid.run

    def create_message(self, *args, **kwargs) -> Message:
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.grid.send_and_receive(messages, timeout=timeout)


class PromptGrid(DelegatingGrid):
    """``send_and_receive`` with the same contract as Flower's, polling from ``first`` s up to ``longest`` s."""

    def __init__(self, grid: Grid, *, first: float = 0.05, longest: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(grid)
        self.first, self.longest, self.clock, self.sleep = first, longest, clock, sleep

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        waiting = set(self.grid.push_messages(messages))
        end = None if timeout is None else self.clock() + timeout
        replies: list[Message] = []
        pause = self.first
        while waiting:
            arrived = list(self.grid.pull_messages(waiting))
            replies.extend(arrived)
            waiting.difference_update(m.metadata.reply_to_message_id for m in arrived)
            if not waiting or (end is not None and self.clock() >= end):
                break
            # A round's replies arrive over seconds to minutes: start fast, then back off.
            self.sleep(pause if end is None else max(0.0, min(pause, end - self.clock())))
            pause = min(pause * 1.5, self.longest)
        return replies
