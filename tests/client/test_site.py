"""A site's plain local update (client/site.py): each objective steps at its own batch size."""
from __future__ import annotations

import math

import pytest
import torch

from client.site import example_count, local_update
from shared_model.config import get_preset
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
