"""Model selection on the validate split: per stage, the best round (or epoch) is kept; early stopping.

One rule for the federation, its pooled and single-site baselines and ``m3fed central``, so every
arm is selected the same way and none is selected on test:

- Training is cut into *stages*: the maximal runs of rounds of one objective (``staged:K``:
  contrastive rounds 1..K, then report generation; pooled training: its contrastive epochs, then
  its report-generation epochs). ``alternate`` interleaves both objectives every round: it is one
  stage.
- After every round the model is scored on the validate split by its stage's metric: macro AUC
  (zero-shot) for contrastive stages and ``alternate``, BLEU-4 (mean over the languages) for
  report-generation stages (``metric: auto``); ``auc`` or ``bleu4`` force one metric for every
  stage; ``last`` turns selection off (the last round is the model, as before issue M).
- The best round of a stage (ties go to the later, more trained round) is restored when the stage
  ends, so the next stage trains from it; the run's model is the best of its last stage.
- ``patience`` N > 0: a stage whose metric has not improved for N rounds ends there; its
  remaining rounds are skipped (a later stage still runs; the last stage's end ends the run).

This module is torch-free: callers hand it the scores and a ``snapshot`` callable, and restore
what ``best_state`` returns.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared_model.schedule import objective_for

SELECT_METRICS = ("auto", "auc", "bleu4", "last")
# A deployed site's validate-split metrics travel beside its test metrics under this prefix
# (val-num-examples, val-auc-macro, val-bleu4[-LANG]).
VALIDATE_PREFIX = "val-"
STAGE_METRIC = {"contrastive": "auc", "report-generation": "bleu4", "alternate": "auc"}


@dataclass(frozen=True)
class SelectionConfig:
    metric: str = "auto"  # auto | auc | bleu4 | last
    patience: int = 0  # rounds without improvement on validate before a stage stops (0: never stops early)

    def __post_init__(self) -> None:
        if self.metric not in SELECT_METRICS:
            raise ValueError(f"--select must be one of {', '.join(SELECT_METRICS)}, got {self.metric!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"--patience must be a whole number >= 0 (0: off), got {self.patience!r}")

    @property
    def on(self) -> bool:
        return self.metric != "last"


@dataclass(frozen=True)
class Stage:
    objective: str  # contrastive | report-generation | alternate (both, interleaved)
    steps: tuple[int, ...]  # the rounds (or epochs, numbered through the run) it covers
    metric: str  # auc | bleu4 | last


def schedule_stages(schedule: str, rounds: int, metric: str = "auto") -> list[Stage]:
    """The stages of a federated schedule (``shared_model.schedule``) over ``rounds`` rounds."""
    if schedule == "alternate":
        return [Stage("alternate", tuple(range(1, rounds + 1)), _metric(metric, "alternate"))]
    stages: list[Stage] = []
    for r in range(1, rounds + 1):
        objective = objective_for(r, schedule)
        if stages and stages[-1].objective == objective:
            stages[-1] = Stage(objective, stages[-1].steps + (r,), stages[-1].metric)
        else:
            stages.append(Stage(objective, (r,), _metric(metric, objective)))
    return stages


def epoch_stages(contrastive_epochs: int, lm_epochs: int, metric: str = "auto") -> list[Stage]:
    """Pooled training's two stages, epochs numbered through the run (contrastive first)."""
    out = []
    if contrastive_epochs:
        out.append(Stage("contrastive", tuple(range(1, contrastive_epochs + 1)), _metric(metric, "contrastive")))
    if lm_epochs:
        first = contrastive_epochs + 1
        out.append(Stage("report-generation", tuple(range(first, first + lm_epochs)),
                         _metric(metric, "report-generation")))
    return out


def _metric(metric: str, objective: str) -> str:
    return STAGE_METRIC[objective] if metric == "auto" else metric


def validation_score(metrics: dict, metric: str) -> float | None:
    """The number a stage selects on, from a validation result (``evaluate_model``'s keys or the
    flat ``{"auc_macro", "bleu4"}`` a deployment aggregates); None when it is not defined."""
    if metric == "auc":
        value = metrics.get("auc_macro")
    elif metric == "bleu4":
        value = metrics.get("bleu4")
        if value is None and metrics.get("bleu"):
            values = [b["bleu4"] for b in metrics["bleu"].values() if b.get("bleu4") is not None]
            value = sum(values) / len(values) if values else None
    else:
        return None
    return float(value) if isinstance(value, (int, float)) and value == value else None


@dataclass
class _Best:
    step: int
    value: float | None  # None: no score (``last``, or nothing released one)
    state: object = field(repr=False, default=None)


class Selector:
    """Tracks one run's validation scores; says which steps to skip and what to restore."""

    def __init__(self, stages: list[Stage], cfg: SelectionConfig = SelectionConfig()) -> None:
        self.stages, self.cfg = stages, cfg
        self.best: dict[int, _Best] = {}  # stage index -> its best step so far
        self.improved: dict[int, int] = {}  # stage index -> its last step that improved the score
        self.stopped: dict[int, int] = {}  # stage index -> the step after which it stopped early
        self.history: list[dict] = []  # one entry per scored step

    def stage_of(self, step: int) -> int:
        for i, stage in enumerate(self.stages):
            if step in stage.steps:
                return i
        raise ValueError(f"step {step} is in no stage")

    def metric_at(self, step: int) -> str:
        return self.stages[self.stage_of(step)].metric

    def skipped(self, step: int) -> bool:
        """A step of a stage that stopped early: nothing trains in it."""
        i = self.stage_of(step)
        return i in self.stopped and step > self.stopped[i]

    def run_over(self, step: int) -> bool:
        """The last stage stopped early at or before ``step``: the run can end."""
        last = len(self.stages) - 1
        return last in self.stopped and step >= self.stopped[last]

    def stage_ends(self, step: int) -> bool:
        """``step`` is its stage's last trained step (the stage's end, or where it stopped early)."""
        i = self.stage_of(step)
        return step == self.stages[i].steps[-1] or self.stopped.get(i) == step

    def observe(self, step: int, metrics: dict, snapshot: Callable[[], object]) -> dict:
        """Record ``step``'s validation result; keeps ``snapshot()`` when it is the stage's best so far.
        Returns the history entry (``value``, ``best``, and ``stopped`` when the stage stops here)."""
        i = self.stage_of(step)
        stage = self.stages[i]
        value = validation_score(metrics, stage.metric) if self.cfg.on else None
        best = self.best.get(i)
        if value is None:
            # Nothing to select on (``last``, or no site released a score): the latest unscored step
            # stands until a scored one comes.
            if best is None or best.value is None:
                self.best[i] = _Best(step, None, snapshot())
        elif best is None or best.value is None or value >= best.value:  # a tie: the more trained
            if best is None or best.value is None or value > best.value:
                self.improved[i] = step
            self.best[i] = _Best(step, value, snapshot())
        entry = {"step": step, "stage": i + 1, "objective": stage.objective, "metric": stage.metric,
                 "value": value, "best": self.best[i].step == step}
        stalled = step - self.improved.get(i, stage.steps[0] - 1)
        if value is not None and self.cfg.patience and stalled >= self.cfg.patience and step != stage.steps[-1]:
            self.stopped[i] = step
            entry["stopped"] = (f"validation {stage.metric} has not improved for {self.cfg.patience} "
                                f"step(s): stage {i + 1} ({stage.objective}) ends after {step}")
        self.history.append(entry)
        return entry

    def best_state(self, step: int):
        """What the model should hold once ``step``'s stage has ended: that stage's best snapshot."""
        best = self.best.get(self.stage_of(step))
        return None if best is None else best.state

    def final_state(self):
        """The selected model's snapshot: the best of the last stage that was scored."""
        return self.best[max(self.best)].state if self.best else None

    def selected(self, unit: str = "round") -> dict:
        """The selected model (the last scored stage's best ``unit``: round or epoch) and each stage's best."""
        stages = [{"stage": i + 1, "objective": self.stages[i].objective, "metric": self.stages[i].metric,
                   unit: b.step, "value": b.value,
                   **({"stopped_after": self.stopped[i]} if i in self.stopped else {})}
                  for i, b in sorted(self.best.items())]
        last = stages[-1] if stages else {}
        return {"rule": self.cfg.metric, "patience": self.cfg.patience, unit: last.get(unit),
                "metric": last.get("metric"), "value": last.get("value"), "stages": stages}

    def to_json(self) -> dict:
        """For ``--resume``: everything but the snapshots (those are checkpoint files)."""
        return {"best": {str(i): {"step": b.step, "value": b.value} for i, b in self.best.items()},
                "improved": {str(i): s for i, s in self.improved.items()},
                "stopped": {str(i): s for i, s in self.stopped.items()}, "history": self.history}

    def restore(self, doc: dict, snapshot_of: Callable[[int, int], object]) -> None:
        """Resume: ``snapshot_of(stage, step)`` gives back a stage's kept best snapshot (None: not kept)."""
        self.best = {int(i): _Best(b["step"], b["value"], snapshot_of(int(i), b["step"]))
                     for i, b in doc.get("best", {}).items()}
        self.improved = {int(i): s for i, s in doc.get("improved", {}).items()}
        self.stopped = {int(i): s for i, s in doc.get("stopped", {}).items()}
        self.history = list(doc.get("history", []))
