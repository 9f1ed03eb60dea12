"""PromptGrid: Flower's send_and_receive contract, with replies collected soon after they arrive."""
from __future__ import annotations

from types import SimpleNamespace

from server.grid import PromptGrid


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class _SlowSites:
    """A grid whose replies appear at given (fake) times; its own send_and_receive must not be used."""

    def __init__(self, clock: _Clock, ready_at: dict[str, float]) -> None:
        self.clock, self.ready_at, self.pulls = clock, ready_at, 0

    def push_messages(self, messages):
        return [m for m in messages]

    def pull_messages(self, message_ids):
        self.pulls += 1
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i))
                for i in message_ids if self.ready_at[i] <= self.clock()]

    def send_and_receive(self, messages, *, timeout=None):
        raise AssertionError("the inner grid's 3-second poll must not be used")


def _grid(ready_at: dict[str, float]) -> tuple[PromptGrid, _SlowSites, _Clock]:
    clock = _Clock()
    inner = _SlowSites(clock, ready_at)
    return PromptGrid(inner, clock=clock, sleep=clock.sleep), inner, clock


def test_every_reply_is_returned_soon_after_the_last_one_arrives():
    grid, inner, clock = _grid({"a": 0.3, "b": 7.0, "c": 30.0})
    replies = grid.send_and_receive(["a", "b", "c"], timeout=None)
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b", "c"]
    assert 30.0 <= clock.now <= 30.0 + grid.longest  # Flower's grid: up to 33 s
    assert inner.pulls < 80  # backs off: not a busy loop


def test_a_timeout_returns_what_arrived_and_does_not_overrun():
    grid, _, clock = _grid({"a": 1.0, "b": 100.0})
    replies = grid.send_and_receive(["a", "b"], timeout=5.0)
    assert [r.metadata.reply_to_message_id for r in replies] == ["a"]
    assert 5.0 <= clock.now <= 5.0 + 1e-9


def test_replies_already_there_need_no_wait():
    grid, inner, clock = _grid({"a": 0.0})
    assert len(grid.send_and_receive(["a"], timeout=10)) == 1
    assert clock.now == 0.0 and inner.pulls == 1
