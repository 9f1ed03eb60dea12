"""Which objective each round trains, and how far into it: what the server schedules and a site trains.

Both apps read the same run config (``schedule``, ``num-server-rounds``, ``local-epochs``,
``lm-local-epochs``), so the ServerApp names a round's objective and the ClientApp finds its
learning-rate slice and its local epochs from the same functions.
"""
from __future__ import annotations

OBJECTIVES = ("contrastive", "report-generation")
SCHEDULES = ("alternate", "contrastive", "report-generation", "staged:K")


def check_schedule(schedule: str) -> str:
    kind, _, k = schedule.partition(":")
    if schedule in SCHEDULES[:3] or (kind == "staged" and k.isdigit() and int(k) >= 1):
        return schedule
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} (K >= 1), got {schedule!r}")


def objective_for(server_round: int, schedule: str) -> str:
    """Which objective a round trains.

    ``alternate`` starts with contrastive; ``staged:K`` trains contrastive for K rounds, then
    report generation, like pooled training's two stages: the decoder learns its mapping once, from
    a text encoder that no longer moves.
    """
    if schedule == "alternate":
        return "contrastive" if server_round % 2 == 1 else "report-generation"
    if schedule.startswith("staged:"):
        return "contrastive" if server_round <= int(schedule.split(":")[1]) else "report-generation"
    return schedule


def objective_progress(server_round: int, schedule: str, num_rounds: int) -> tuple[float, float]:
    """The slice of its objective's whole training that this round covers (see ``ProgressLR``)."""
    objective = objective_for(server_round, schedule)
    mine = [r for r in range(1, max(num_rounds, server_round) + 1) if objective_for(r, schedule) == objective]
    i = mine.index(server_round)
    return i / len(mine), (i + 1) / len(mine)


def local_epochs_for(objective: str, local_epochs: int, lm_local_epochs: int) -> int:
    """Report-generation rounds may run their own number of local epochs (0: the same)."""
    return lm_local_epochs if objective == "report-generation" and lm_local_epochs > 0 else local_epochs
