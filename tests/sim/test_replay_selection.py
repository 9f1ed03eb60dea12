"""The baselines' replay of the federation's schedule is selected by the federation's rule (sim.baselines)."""
from __future__ import annotations

import pytest
import torch

import sim.baselines as baselines
from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.objectives import TrainConfig
from shared_model.selection import SelectionConfig


@pytest.fixture()
def replay(monkeypatch):
    """replay_schedule with a local update that only writes the round into the CLIP temperature."""
    def fake_update(model, examples, objective, **_):
        with torch.no_grad():
            model.clip.logit_scale.fill_(float(len(trained) + 1))
        trained.append(objective)
        return 0.0, 1

    trained: list[str] = []
    monkeypatch.setattr(baselines, "local_update", fake_update)
    model = build_model(get_preset("tiny"))

    def run(schedule: str, rounds: int, scores: dict[int, float], **kwargs):
        seen = []

        def validate(m, metric):
            r = int(m.clip.logit_scale.item())
            seen.append((r, metric))
            return {"auc_macro": scores[r], "bleu": {"en": {"bleu4": scores[r]}}}
        baselines.replay_schedule(model, None, rounds=rounds, schedule=schedule, local_epochs=1, train=TrainConfig(),
                                  seed=0, device=torch.device("cpu"), validate=validate, **kwargs)
        return model, seen, trained
    return run


def test_a_single_site_under_alternate_ends_at_its_best_contrastive_round(replay):
    # Rounds 1 and 3 are contrastive (the site's 1st and 2nd update); round 4, report generation, is not its own.
    model, seen, trained = replay("alternate", 4, {1: 0.8, 2: 0.6}, objectives=("contrastive",))
    assert trained == ["contrastive", "contrastive"] and seen == [(1, "auc"), (2, "auc")]
    assert model.clip.logit_scale.item() == 1.0 and model.selection["round"] == 1


def test_pooled_restores_the_best_contrastive_round_before_report_generation(replay):
    model, seen, _ = replay("staged:3", 5, {1: 0.5, 2: 0.9, 3: 0.7, 4: 0.2, 5: 0.3},
                            selection=SelectionConfig(patience=0))
    # Round 4 trained from round 2's weights (restored when the contrastive stage ended).
    assert [m for _, m in seen] == ["auc"] * 3 + ["bleu4"] * 2
    assert [s["round"] for s in model.selection["stages"]] == [2, 5]


def test_patience_skips_the_rest_of_a_baseline_stage(replay):
    model, seen, trained = replay("staged:4", 6, {1: 0.9, 2: 0.5, 3: 0.6, 4: 0.7},
                                  selection=SelectionConfig(patience=1))
    assert trained == ["contrastive", "contrastive", "report-generation", "report-generation"]
    assert model.selection["stages"][0] == {"stage": 1, "objective": "contrastive", "metric": "auc", "round": 1,
                                            "value": 0.9, "stopped_after": 2}
