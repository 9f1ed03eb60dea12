"""A site's plain local update (client/app/site.py): each objective steps at its own batch size, and a
site keeps its optimiser state from round to round."""
from __future__ import annotations

import math

import pytest
import torch

from client.app.site import declaration, example_count, local_update
from shared_model.config import get_preset
from shared_model.kept_state import RoundFiles
from shared_model.model import build_model
from shared_model.objectives import TrainConfig
from tests.privacy.test_dp import site


@pytest.mark.parametrize("objective, batch", [("contrastive", 6), ("report-generation", 4)])
def test_each_objective_takes_one_step_per_batch_of_its_own_size(objective, batch):
    examples, steps = site(patients=6), []
    train = TrainConfig(batch_size=6, lm_batch_size=4)
    torch.manual_seed(0)
    _, n = local_update(build_model(get_preset("tiny")), examples, objective, train=train, epochs=2, seed=0,
                        device=torch.device("cpu"), on_step=steps.append, progress=(0.0, 0.5))
    assert n == example_count(examples, objective) and train.batch_for(objective) == batch
    assert len(steps) == 2 * math.ceil(n / batch)


def test_report_batches_default_to_the_common_batch_size():
    assert TrainConfig(batch_size=8).batch_for("report-generation") == 8
    with pytest.raises(ValueError, match="lm_batch_size"):
        TrainConfig(lm_batch_size=0)


@pytest.mark.parametrize("objective", ["contrastive", "report-generation"])
def test_a_site_carries_its_optimiser_state_into_its_next_round(tmp_path, objective):
    """Round 2 starts from round 1's moments (AdamW's step count goes on), at round 2's learning rate."""
    examples, train, steps = site(patients=6), TrainConfig(batch_size=6, lm_batch_size=4), []
    model = build_model(get_preset("tiny"))
    for round in (1, 2):
        local_update(model, examples, objective, train=train, epochs=1, seed=round, device=torch.device("cpu"),
                     on_step=steps.append, progress=(0.0, 0.5), memory=RoundFiles(tmp_path, round))
    state = RoundFiles(tmp_path, 3).load(objective)
    assert {p["step"].item() for p in state["state"].values()} == {len(steps)}
    assert state["param_groups"][0]["lr"] < (train.lr if objective == "contrastive" else train.lm_lr)


def test_kept_state_from_another_model_is_refused(tmp_path):
    examples, train = site(patients=6), TrainConfig(batch_size=6)
    local_update(build_model(get_preset("tiny")), examples, "contrastive", train=train, epochs=1, seed=0,
                 device=torch.device("cpu"), memory=RoundFiles(tmp_path, 1))
    with pytest.raises(ValueError, match="does not match"):
        local_update(build_model(get_preset("tiny")), examples, "report-generation", train=train, epochs=1, seed=0,
                     device=torch.device("cpu"), memory=_Renamed(RoundFiles(tmp_path, 2)))


class _Renamed:
    """Hands the contrastive half's state to the report-generation half."""

    def __init__(self, files: RoundFiles) -> None:
        self.files = files

    def load(self, objective: str):
        return self.files.load("contrastive")

    def save(self, objective: str, state: dict) -> None:
        self.files.save(objective, state)


def test_a_site_declares_what_it_can_train_and_in_which_languages():
    examples = site(patients=4)
    assert declaration(examples) == {"languages": ["en"], "modalities": ["CXR"], "images": True,
                                     "objectives": ["contrastive", "report-generation"],
                                     "examples-contrastive": example_count(examples, "contrastive"),
                                     "examples-report-generation": len(examples.records)}
    text_only = examples.subset(lambda r: r.image is None)
    assert declaration(text_only) == {"languages": ["en"], "modalities": [], "images": False,
                                      "objectives": ["report-generation"], "examples-contrastive": 0,
                                      "examples-report-generation": len(text_only.records)}
    assert 0 < example_count(examples, "contrastive") <= len(examples.records)
