"""The ServerApp's side of model selection (``shared_model.selection``) over federated rounds.

After every round the global model is scored on the validate split: by the server in a
simulation (the validate patients never reach a site), by the sites on their own validate patients
in a deployment (``server.site_evaluation``; image-weighted, as the test metrics are, and only what
each site's policy releases). A round that is its stage's best so far is written to
``model.safetensors``; when a stage ends (or stops early: ``patience``), the global model sent to
the next round is that stage's best; rounds of a stage that stopped early send nothing.
"""
from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord

from server.evaluation import federated_metrics
from server.run_state import WEIGHTS, save_weights
from shared_model.checkpoint import load_weights_into, read_metadata
from shared_model.selection import SelectionConfig, Selector, schedule_stages, validation_score


class ServerSelection:
    def __init__(self, cfg: SelectionConfig, *, schedule: str, rounds: int, run_dir: Path, evaluation, device,
                 state: dict | None = None, model=None) -> None:
        self.cfg, self.run_dir, self.evaluation, self.device = cfg, run_dir, evaluation, device
        self.selector = Selector(schedule_stages(schedule, rounds, cfg.metric), cfg)
        if state and state.get("selection"):  # --resume: the current stage's best is model.safetensors
            self.selector.restore(state["selection"], lambda stage, step: self._kept(model, step))

    def _kept(self, model, step: int) -> ArrayRecord | None:
        """The selected checkpoint of ``step`` as a full state (tied copies too), if that is what is on disk."""
        path = self.run_dir / WEIGHTS
        if not path.is_file() or read_metadata(path).get("round") != step:
            return None
        current = ArrayRecord(model.state_dict())
        load_weights_into(model, path)
        kept = ArrayRecord(model.state_dict())
        model.load_state_dict(current.to_torch_state_dict())
        return kept

    def skip_reason(self, global_round: int) -> str | None:
        """Why nothing trains in this round (its stage stopped early), for the strategy's ``skip_round``."""
        if not self.selector.skipped(global_round):
            return None
        stage = self.selector.stage_of(global_round)
        return f"early stopping: stage {stage + 1} ended after round {self.selector.stopped[stage]}"

    def validate_metric(self, global_round: int) -> str | None:
        """The metric the sites score their validate patients by this round (a deployment), or None."""
        return None if self.selector.skipped(global_round) or not self.cfg.on else self.selector.metric_at(global_round)

    def after_round(self, global_round: int, model, arrays: ArrayRecord, site_eval: dict) -> dict:
        """Score the round on validate, keep it if best, restore the stage's best at its end (in
        ``arrays``, which the next round sends, and in ``model``). Returns the round's validation entry."""
        metric = self.selector.metric_at(global_round)
        if not self.cfg.on:
            scores = {}
        elif self.evaluation is not None:
            scores = _flat(self.evaluation.validate(model, self.device, metric=metric))
        else:
            scores = _flat(federated_metrics({name: {"status": "ok", "test_images": e["validate"]["images"],
                                                     **e["validate"]} for name, e in site_eval.items()
                                              if e.get("status") == "ok" and e.get("validate")}))
        entry = self.selector.observe(global_round, scores, snapshot=lambda: _copy(arrays))
        if entry["best"] and self.cfg.on:
            save_weights(self.run_dir / WEIGHTS, model, server_round=global_round, selected=metric)
        if self.selector.stage_ends(global_round):
            best = self.selector.best_state(global_round)
            if best is not None and entry["step"] != self.selector.best[self.selector.stage_of(global_round)].step:
                for key in best.keys():
                    arrays[key] = best[key]
                model.load_state_dict(best.to_torch_state_dict())
        return {**scores, "metric": metric, "value": entry["value"], "best": entry["best"],
                **({"stopped": entry["stopped"]} if "stopped" in entry else {})}

    def run_over(self, global_round: int) -> bool:
        return self.selector.run_over(global_round)

    def selected_arrays(self) -> ArrayRecord | None:
        return self.selector.final_state()

    def summary(self) -> dict:
        """results.json's ``selected``: which round the model is, by which metric, and each stage's best."""
        return {**self.selector.selected(unit="round"),
                "on": "validate split" if self.cfg.on else "off: the last round"}

    def to_json(self) -> dict:
        return self.selector.to_json()


def _flat(result: dict) -> dict:
    """``{"auc_macro", "bleu4"}`` (BLEU-4 averaged over the languages scored) from an evaluation result."""
    return {"auc_macro": result.get("auc_macro"), "bleu4": validation_score(result, "bleu4")} if result else {}


def _copy(arrays: ArrayRecord) -> ArrayRecord:
    """A shallow copy: an ``Array`` holds immutable bytes, and a round replaces entries, never edits them."""
    return ArrayRecord({k: arrays[k] for k in arrays.keys()})
