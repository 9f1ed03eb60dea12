"""Rich live view of a simulated run: rounds, sites, objectives, losses, elapsed time."""
from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from client.app.progress import read_progress


class LiveProgress:
    """Follows ``progress.jsonl`` (written by the ServerApp and the sites) and the baselines."""

    def __init__(self, console: Console, progress_file: str, *, sites: list[str], rounds: int) -> None:
        self.file, self.sites, self.rounds = progress_file, sites, rounds
        self.offset, self.started = 0, time.perf_counter()
        self.site_rows: dict[tuple[int, str], dict] = {}
        self.round_rows: list[dict] = []
        self.baseline_rows: dict[str, dict] = {}
        self.live = Live(self._render(), console=console, refresh_per_second=2, transient=False)

    def __enter__(self) -> "LiveProgress":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.tick()
        self.live.__exit__(*exc)

    def tick(self) -> None:
        events, self.offset = read_progress(self.file, self.offset)
        for e in events:
            if e.get("event") == "site":
                name = self.sites[e["site"]] if 0 <= e["site"] < len(self.sites) else f"site {e['site']}"
                self.site_rows[(e["round"], name)] = e
            elif e.get("event") == "round":
                self.round_rows.append(e)
        self.live.update(self._render())

    def baseline(self, **event) -> None:
        self.baseline_rows[event["model"]] = event
        self.live.update(self._render())

    def _render(self) -> Group:
        elapsed = time.perf_counter() - self.started
        done = len(self.round_rows)
        head = Text(f"federated round {min(done + 1, self.rounds)}/{self.rounds} · elapsed {elapsed:5.0f} s",
                    style="bold")
        table = Table(show_edge=False, pad_edge=False)
        for column in ("round", "objective", "site", "status", "loss", "examples", "seconds"):
            table.add_column(column, justify="right" if column in ("loss", "examples", "seconds") else "left")
        for r in self.round_rows[-3:]:
            for name, s in sorted(r["sites"].items()):
                # A reply the server rejected before aggregation is shown with its reason, in red.
                status = (Text(s["status"][:60], style="red") if s["status"].startswith("rejected")
                          else s["status"][:40])
                table.add_row(str(r["round"]), r["objective"], name, status, _num(s.get("loss")),
                              str(s.get("examples", "")), _num(s.get("seconds"), 1))
            table.add_row("", "", "[bold]global[/]", f"AUC {_num(r['auc_macro'])}", "", "", _num(r["seconds"], 1))
        running = done + 1
        for (rnd, name), e in sorted(self.site_rows.items()):
            if rnd == running:
                table.add_row(str(rnd), e["objective"], name, "sent", _num(e.get("loss")), str(e["examples"]),
                              _num(e["seconds"], 1))
        parts = [head, table]
        if self.baseline_rows:
            base = Table(title="baselines (same schedule, same test split)", show_edge=False)
            for column in ("model", "round", "objective", "loss"):
                base.add_column(column)
            for label, e in self.baseline_rows.items():
                base.add_row(label, str(e["round"]), e["objective"], _num(e.get("loss")))
            parts.append(base)
        return Group(*parts)


def _num(value, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"
