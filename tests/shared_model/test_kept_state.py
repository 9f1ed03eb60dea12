"""Kept optimiser state on disk (shared_model/kept_state.py): a re-run round reads what it read the first time."""
from __future__ import annotations

import pytest
import torch

from shared_model.kept_state import InMemory, RoundFiles, keep, restore


def _optimizer(lr: float) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr)
    layer(torch.ones(1, 3)).sum().backward()
    opt.step()
    return opt


def test_a_round_reads_the_newest_earlier_round_and_a_rerun_reads_the_same(tmp_path):
    assert RoundFiles(tmp_path, 1).load("contrastive") is None
    for round in (1, 2, 3):
        RoundFiles(tmp_path, round).save("contrastive", {"round": torch.tensor(round)})
    # Round 3 keeps the state it started from (round 2): a crash and re-run of round 3 reads it again.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optimizer-contrastive-r2.pt", "optimizer-contrastive-r3.pt"]
    assert RoundFiles(tmp_path, 3).load("contrastive")["round"].item() == 2
    assert RoundFiles(tmp_path, 7).load("contrastive")["round"].item() == 3
    assert RoundFiles(tmp_path, 7).load("report-generation") is None  # each objective has its own


def test_restore_keeps_the_moments_and_this_rounds_learning_rate():
    trained, fresh, memory = _optimizer(lr=0.5), torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=1e-3), InMemory()
    keep(trained, memory, "contrastive")
    restore(fresh, memory, "contrastive")
    assert fresh.param_groups[0]["lr"] == 1e-3
    for old, new in zip(trained.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        assert torch.equal(old["exp_avg"], new["exp_avg"]) and old["step"] == new["step"]
    restore(fresh, None, "contrastive")  # no memory: nothing to restore, no error


def test_state_of_other_shapes_is_refused_before_training():
    memory = InMemory()
    keep(_optimizer(lr=0.5), memory, "contrastive")  # Linear(3, 2): same number of tensors as Linear(2, 3)
    with pytest.raises(ValueError, match="does not match"):
        restore(torch.optim.AdamW(torch.nn.Linear(2, 3).parameters(), lr=1e-3), memory, "contrastive")
