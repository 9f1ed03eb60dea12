"""Flower's FedAvg, told which objective each round trains, and keeping a per-site round log."""
from __future__ import annotations

import re
import time
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

SCHEDULES = ("alternate", "contrastive", "report-generation")


def objective_for(server_round: int, schedule: str) -> str:
    """Alternate starts with contrastive: the decoder learns from an aligned text encoder."""
    if schedule == "alternate":
        return "contrastive" if server_round % 2 == 1 else "report-generation"
    return schedule


class ObjectiveFedAvg(FedAvg):
    """FedAvg weighted by examples; sites with 0 examples for the round's objective are left out."""

    def __init__(self, *, schedule: str, site_names: list[str], round_offset: int = 0, **kwargs) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        super().__init__(**kwargs)
        # Flower numbers a resumed run's rounds from 1 again; the offset keeps global round numbers.
        self.schedule, self.site_names, self.round_offset = schedule, site_names, round_offset
        self.round_log: dict[int, dict] = {}
        self._started: dict[int, float] = {}
        self._bytes_down = 0

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
                        ) -> Iterable[Message]:
        global_round = server_round + self.round_offset
        self._started[global_round] = time.perf_counter()
        self._bytes_down = arrays.count_bytes()
        config["objective"] = objective_for(global_round, self.schedule)
        config["global-round"] = global_round
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        sites: dict[str, dict] = {}
        useful = []
        for reply in replies:
            if reply.has_error():
                name, reason = self._error_site(reply)
                sites[name] = {"status": f"error: {reason}", "examples": 0, "bytes_up": 0,
                               "bytes_down": self._bytes_down, "epsilon": None}
                continue
            m = reply.content["metrics"]
            index = int(m["site-index"])
            name = self.site_names[index] if 0 <= index < len(self.site_names) else f"node-{reply.metadata.src_node_id}"
            n = int(m["num-examples"])
            sites[name] = {"status": "ok" if n else "no data for this objective", "examples": n,
                           "loss": float(m["loss"]) if n else None, "bytes_up": int(m["bytes-up"]),
                           "bytes_down": self._bytes_down, "epsilon": None}
            if n:
                useful.append(reply)
        global_round = server_round + self.round_offset
        self.round_log[global_round] = {"objective": objective_for(global_round, self.schedule), "sites": sites}
        if not useful:
            return None, None
        return super().aggregate_train(server_round, useful)

    def _error_site(self, reply: Message) -> tuple[str, str]:
        """Site name and a one-line reason; our ClientApp prefixes its errors with ``[site N]``."""
        reason = (reply.error.reason or f"error code {reply.error.code}").strip()
        match = re.match(r"\[site (-?\d+)\] (.*)", reason, re.S)
        if match and 0 <= int(match.group(1)) < len(self.site_names):
            return self.site_names[int(match.group(1))], match.group(2)[:300]
        # Flower's own errors (crash, node unavailable) carry tracebacks: keep the last line.
        return f"node-{reply.metadata.src_node_id}", reason.splitlines()[-1][:300]

    def round_seconds(self, global_round: int) -> float:
        return time.perf_counter() - self._started.get(global_round, time.perf_counter())
