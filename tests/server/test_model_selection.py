"""The ServerApp's model selection (server.model_selection, server.site_evaluation), without a Flower runtime:
scripted validation scores, a real tiny model, real ArrayRecords and Messages."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

from server.model_selection import ServerSelection
from server.run_state import WEIGHTS
from server.site_evaluation import evaluation_entry
from server.strategy import make_strategy
from shared_model.checkpoint import read_metadata
from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.selection import SelectionConfig


class _Validation:
    """Stands in for ServerEvaluation: the validate AUC of each round, as scripted."""

    def __init__(self, scores: dict[int, float]) -> None:
        self.scores, self.round, self.asked = scores, 0, []

    def validate(self, model, device, *, metric):
        self.asked.append(metric)
        return {"auc_macro": self.scores[self.round], "bleu": {"en": {"bleu4": self.scores[self.round] / 2}}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny"))


def _weights(model, value: float) -> ArrayRecord:
    """A global model whose CLIP temperature encodes the round (a cheap marker of which round it is)."""
    state = model.state_dict()
    state["clip.logit_scale"] = torch.tensor(value)
    return ArrayRecord(state)


def test_the_best_round_is_kept_restored_at_its_stage_end_and_written(tmp_path, model):
    validation = _Validation({1: 0.60, 2: 0.72, 3: 0.65, 4: 0.10, 5: 0.30})
    selection = ServerSelection(SelectionConfig(), schedule="staged:3", rounds=5, run_dir=tmp_path,
                                evaluation=validation, device=torch.device("cpu"))
    for r in range(1, 6):
        validation.round = r
        arrays = _weights(model, float(r))
        model.load_state_dict(arrays.to_torch_state_dict())
        entry = selection.after_round(r, model, arrays, {})
        if r == 3:  # the contrastive stage ends: the next round starts from its best, round 2
            assert float(arrays["clip.logit_scale"].numpy()) == 2.0
            assert model.clip.logit_scale.item() == 2.0
        if r == 2:
            assert entry["best"] and read_metadata(tmp_path / WEIGHTS)["round"] == 2
    assert validation.asked == ["auc"] * 3 + ["bleu4"] * 2
    summary = selection.summary()
    assert summary["round"] == 5 and summary["metric"] == "bleu4"
    assert [(s["objective"], s["round"]) for s in summary["stages"]] == [("contrastive", 2),
                                                                          ("report-generation", 5)]
    assert float(selection.selected_arrays()["clip.logit_scale"].numpy()) == 5.0


def test_patience_skips_the_rest_of_a_stage_and_the_strategy_sends_nothing(tmp_path, model):
    validation = _Validation({1: 0.7, 2: 0.6})
    selection = ServerSelection(SelectionConfig(patience=1), schedule="staged:4", rounds=6, run_dir=tmp_path,
                                evaluation=validation, device=torch.device("cpu"))
    for r in (1, 2):
        validation.round = r
        selection.after_round(r, model, _weights(model, float(r)), {})
    assert selection.skip_reason(2) is None and "stage 1 ended after round 2" in selection.skip_reason(3)
    assert selection.skip_reason(5) is None and not selection.run_over(2)
    strategy = make_strategy("fedavg", options={}, schedule="staged:4", site_names=["a"], round_offset=0,
                             total_rounds=6, fraction_train=1.0, min_train_nodes=1, min_available_nodes=1)
    strategy.skip_round = selection.skip_reason
    arrays = ArrayRecord({"clip.w": Array(np.zeros(2, np.float32))})
    assert list(strategy.configure_train(3, arrays, ConfigRecord({}), _Grid())) == []
    assert strategy.aggregate_train(3, []) == (None, None)
    assert strategy.round_log[3]["skipped"].startswith("early stopping")
    assert list(strategy.configure_evaluate(3, arrays, ConfigRecord({}), _Grid())) == []


def test_resume_takes_the_kept_best_back_from_disk(tmp_path, model):
    validation = _Validation({1: 0.5, 2: 0.8, 3: 0.6})
    first = ServerSelection(SelectionConfig(), schedule="contrastive", rounds=4, run_dir=tmp_path,
                            evaluation=validation, device=torch.device("cpu"))
    for r in (1, 2, 3):
        validation.round = r
        arrays = _weights(model, float(r))
        model.load_state_dict(arrays.to_torch_state_dict())
        first.after_round(r, model, arrays, {})
    again = ServerSelection(SelectionConfig(), schedule="contrastive", rounds=4, run_dir=tmp_path,
                            evaluation=validation, device=torch.device("cpu"),
                            state={"selection": first.to_json()}, model=model)
    validation.round = 4
    validation.scores[4] = 0.7
    arrays = _weights(model, 4.0)
    again.after_round(4, model, arrays, {})  # the stage's end: round 2, read back from model.safetensors
    assert float(arrays["clip.logit_scale"].numpy()) == 2.0 and again.summary()["round"] == 2


def test_a_deployment_selects_on_the_sites_validate_scores_weighted_by_images(tmp_path, model):
    selection = ServerSelection(SelectionConfig(), schedule="contrastive", rounds=2, run_dir=tmp_path,
                                evaluation=None, device=torch.device("cpu"))
    site_eval = {"a": evaluation_entry(MetricRecord({"val-num-examples": 30, "val-auc-macro": 0.9})),
                 "b": evaluation_entry(MetricRecord({"val-num-examples": 10, "val-auc-macro": 0.5})),
                 "c": {"status": "metrics withheld by the site's privacy policy", "test_images": 7}}
    assert site_eval["a"] == {"status": "ok", "validate": {"images": 30, "auc_macro": 0.9, "bleu4": None,
                                                            "bleu4_by_language": {}}}
    entry = selection.after_round(1, model, _weights(model, 1.0), site_eval)
    assert entry["auc_macro"] == pytest.approx(0.8) and entry["value"] == pytest.approx(0.8)
    assert selection.validate_metric(2) == "auc"


@pytest.mark.parametrize("metrics, problem", [
    ({"val-num-examples": -1, "val-auc-macro": 0.5}, "num-examples is not a count"),
    ({"val-num-examples": 4, "val-auc-macro": 1.5}, "val-auc-macro is not a fraction"),
    ({"num-examples": 4, "auc-macro": 0.5, "bleu4": 0.1, "val-num-examples": 4, "val-auc-macro": 0.5,
      "val-bleu4": float("nan")}, "val-bleu4 is not a fraction")])
def test_a_bad_validation_reply_is_rejected_naming_the_key(metrics, problem):
    assert problem in evaluation_entry(MetricRecord(metrics))["status"]


def test_sites_are_asked_for_validate_scores_every_round_and_reports_only_for_bleu_stages():
    strategy = make_strategy("fedavg", options={}, schedule="staged:1", site_names=["a"], round_offset=0,
                             total_rounds=3, fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1,
                             min_evaluate_nodes=1, min_available_nodes=1)
    strategy.validate_rounds = lambda r: "auc" if r == 1 else "bleu4"
    arrays = ArrayRecord({"clip.w": Array(np.zeros(2, np.float32))})
    configs = [dict(next(iter(strategy.configure_evaluate(r, arrays, ConfigRecord({}), _Grid()))).content["config"])
               for r in (1, 2, 3)]
    assert [c["splits"] for c in configs] == ["validate", "validate", "test,validate"]
    assert [c["validate-reports"] for c in configs] == [0, 1, 1]


class _Grid:
    def get_node_ids(self):
        return [11]


def test_the_selected_checkpoint_names_its_round(tmp_path, model):
    validation = _Validation({1: 0.9, 2: 0.1})
    selection = ServerSelection(SelectionConfig(), schedule="contrastive", rounds=2, run_dir=tmp_path,
                                evaluation=validation, device=torch.device("cpu"))
    for r in (1, 2):
        validation.round = r
        selection.after_round(r, model, _weights(model, float(r)), {})
    meta = read_metadata(tmp_path / WEIGHTS)
    assert meta["round"] == 1 and meta["selected"] == "auc"


class _EvaluatingGrid:
    """Answers evaluate messages with the test metrics of the model it was sent (its CLIP temperature)."""

    def __init__(self) -> None:
        self.sent = []

    def get_node_ids(self):
        return [11, 12]

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for m in messages:
            self.sent.append(dict(m.content["config"]))
            scale = float(m.content["arrays"]["clip.logit_scale"].numpy())
            replies.append(Message(RecordDict({
                "metrics": MetricRecord({"num-examples": 10, "site-index": -1, "auc-macro": scale / 10,
                                         "bleu4": 0.1, "bleu4-en": 0.1}),
                "site": ConfigRecord({"name": f"h{m.metadata.dst_node_id}"})}), reply_to=m))
        return replies


def test_a_deployment_scores_the_selected_model_on_the_sites_test_patients(tmp_path, model):
    from server.server_app import _selected_test

    selection = ServerSelection(SelectionConfig(), schedule="contrastive", rounds=2, run_dir=tmp_path,
                                evaluation=None, device=torch.device("cpu"))
    for r, auc in ((1, 0.9), (2, 0.4)):
        site_eval = {"h11": evaluation_entry(MetricRecord({"val-num-examples": 5, "val-auc-macro": auc}))}
        selection.after_round(r, model, _weights(model, float(r)), site_eval)
    strategy = make_strategy("fedavg", options={}, schedule="contrastive", site_names=[], round_offset=0,
                             total_rounds=2, fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1,
                             min_evaluate_nodes=1, min_available_nodes=2)
    grid = _EvaluatingGrid()
    final = _selected_test(model, selection, evaluation=None, device=torch.device("cpu"), strategy=strategy,
                           grid=grid, chosen=selection.summary(), done=0, last_round=2, stopped=False, timeout=5)
    # Round 1 was selected, not the last: one more message asks the sites for its test scores.
    assert [c["splits"] for c in grid.sent] == ["test", "test"]
    assert final["auc_macro"] == pytest.approx(0.1) and set(final["site_eval"]) == {"h11", "h12"}
    assert model.clip.logit_scale.item() == 1.0
