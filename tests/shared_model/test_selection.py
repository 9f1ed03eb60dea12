"""Model selection's rule (shared_model.selection): stages, best step, restore at a stage's end, patience."""
import pytest

from shared_model.selection import (SelectionConfig, Selector, epoch_stages, schedule_stages, validation_score)


def _run(selector: Selector, scores: dict[int, float], metric: str = "auc_macro") -> dict[int, object]:
    """Feed ``scores`` step by step as a training loop would; returns what each stage end restored."""
    restored = {}
    for step in sorted(scores):
        if selector.skipped(step):
            continue
        selector.observe(step, {metric: scores[step]}, snapshot=lambda s=step: f"weights@{s}")
        if selector.stage_ends(step):
            restored[step] = selector.best_state(step)
        if selector.run_over(step):
            break
    return restored


def test_stages_of_each_schedule():
    staged = schedule_stages("staged:3", 5)
    assert [(s.objective, s.steps, s.metric) for s in staged] == [
        ("contrastive", (1, 2, 3), "auc"), ("report-generation", (4, 5), "bleu4")]
    assert [(s.objective, s.steps, s.metric) for s in schedule_stages("alternate", 4)] == [("alternate", (1, 2, 3, 4), "auc")]
    assert [s.metric for s in schedule_stages("staged:3", 5, "bleu4")] == ["bleu4", "bleu4"]
    assert [(s.objective, s.steps) for s in epoch_stages(3, 2)] == [("contrastive", (1, 2, 3)),
                                                                     ("report-generation", (4, 5))]
    assert [s.objective for s in epoch_stages(0, 2)] == ["report-generation"]


def test_best_step_is_restored_when_its_stage_ends():
    selector = Selector(epoch_stages(4, 0))
    restored = _run(selector, {1: 0.60, 2: 0.75, 3: 0.70, 4: 0.65})
    assert restored == {4: "weights@2"}
    assert selector.selected(unit="step")["step"] == 2 and selector.selected()["value"] == 0.75
    assert selector.final_state() == "weights@2"


def test_each_stage_selects_on_its_own_metric():
    selector = Selector(schedule_stages("staged:2", 4))
    for step, auc, bleu in ((1, 0.7, None), (2, 0.6, None), (3, 0.6, 0.10), (4, 0.6, 0.08)):
        selector.observe(step, {"auc_macro": auc, "bleu4": bleu}, snapshot=lambda s=step: s)
    chosen = selector.selected(unit="step")
    assert chosen["step"] == 3 and chosen["metric"] == "bleu4"
    assert [(s["step"], s["metric"]) for s in chosen["stages"]] == [(1, "auc"), (3, "bleu4")]


def test_ties_keep_the_later_step():
    selector = Selector(epoch_stages(3, 0))
    _run(selector, {1: 0.5, 2: 0.8, 3: 0.8})
    assert selector.selected(unit="step")["step"] == 3


def test_patience_ends_a_stage_and_skips_its_remaining_steps():
    selector = Selector(schedule_stages("staged:6", 8), SelectionConfig(patience=2))
    restored = _run(selector, {1: 0.6, 2: 0.7, 3: 0.69, 4: 0.68, 5: 0.9, 6: 0.9, 7: 0.2, 8: 0.3}, "auc_macro")
    assert selector.stopped[0] == 4 and restored[4] == "weights@2"
    assert selector.skipped(5) and selector.skipped(6) and not selector.skipped(7)
    assert "not improved for 2" in selector.history[3]["stopped"]


def test_patience_in_the_last_stage_ends_the_run():
    selector = Selector(epoch_stages(5, 0), SelectionConfig(patience=1))
    _run(selector, {1: 0.6, 2: 0.5, 3: 0.9, 4: 0.9, 5: 0.9})
    assert selector.run_over(2) and [h["step"] for h in selector.history] == [1, 2]
    assert selector.final_state() == "weights@1"


def test_last_keeps_the_last_step_and_never_stops():
    selector = Selector(epoch_stages(3, 0), SelectionConfig(metric="last", patience=1))
    _run(selector, {1: 0.9, 2: 0.1, 3: 0.2})
    assert selector.final_state() == "weights@3" and not selector.stopped


def test_steps_without_a_score_do_not_displace_a_scored_best_nor_stop_a_stage():
    selector = Selector(epoch_stages(4, 0), SelectionConfig(patience=1))
    selector.observe(1, {}, snapshot=lambda: "w1")  # e.g. every site withheld its validation metrics
    selector.observe(2, {"auc_macro": 0.7}, snapshot=lambda: "w2")
    selector.observe(3, {"auc_macro": float("nan")}, snapshot=lambda: "w3")
    assert selector.best_state(3) == "w2" and not selector.stopped


def test_resume_restores_the_selection_state():
    first = Selector(epoch_stages(4, 0), SelectionConfig(patience=3))
    _run(first, {1: 0.6, 2: 0.8})
    again = Selector(epoch_stages(4, 0), SelectionConfig(patience=3))
    again.restore(first.to_json(), lambda stage, step: f"kept@{step}")
    _run(again, {3: 0.7, 4: 0.75})
    assert again.final_state() == "kept@2" and [h["step"] for h in again.history] == [1, 2, 3, 4]


def test_validation_score_reads_both_result_shapes():
    assert validation_score({"bleu": {"en": {"bleu4": 0.2}, "zh": {"bleu4": 0.4}}}, "bleu4") == pytest.approx(0.3)
    assert validation_score({"auc_macro": float("nan")}, "auc") is None
    assert validation_score({"auc_macro": 0.7}, "last") is None


@pytest.mark.parametrize("kwargs", [{"metric": "loss"}, {"patience": -1}, {"patience": 1.5}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="--select|--patience"):
        SelectionConfig(**kwargs)
