"""FedProx's proximal term, added by wrapping the optimiser; the run-wide learning-rate schedule."""
from __future__ import annotations

import pytest
import torch

from shared_model.objectives import ProgressLR, add_proximal_term
from shared_model.schedule import objective_progress


def test_proximal_term_pulls_weights_back_to_the_round_start():
    # Prepare: a weight that drifted by +1 from where the round started; the loss gives no gradient.
    w = torch.nn.Parameter(torch.zeros(3))
    optimizer = add_proximal_term(torch.optim.SGD([w], lr=0.1), mu=0.5)
    with torch.no_grad():
        w += 1.0
    w.grad = torch.zeros(3)
    # Execute
    optimizer.step()
    # Assert: the step followed mu * (w - w_start) = 0.5, times lr 0.1.
    assert torch.allclose(w.detach(), torch.full((3,), 1.0 - 0.05))


def test_mu_zero_leaves_the_optimiser_alone():
    w = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([w], lr=0.1)
    step = optimizer.step
    assert add_proximal_term(optimizer, mu=0.0).step == step


def _lrs(progress, steps):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule, seen = ProgressLR(optimizer, progress, steps), []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        schedule.step()
    return seen


def test_rounds_together_follow_one_warm_up_then_cosine_curve():
    # Four rounds of 10 steps each, each with a fresh optimiser, against one 40-step pass.
    by_round = [lr for r in range(4) for lr in _lrs((r / 4, (r + 1) / 4), 10)]
    whole = _lrs((0.0, 1.0), 40)
    assert by_round == pytest.approx(whole)
    peak = by_round.index(max(by_round))
    assert 0 < peak < 8  # warm-up: the first 10 % of the run
    assert all(a >= b for a, b in zip(by_round[peak:], by_round[peak + 1:]))  # then only decays
    assert by_round[-1] < 0.05 and by_round[0] < 0.2


def test_a_round_covers_its_share_of_its_own_objective():
    # staged:2 over 5 rounds: contrastive rounds 1-2, report generation 3-5.
    assert objective_progress(2, "staged:2", 5) == (0.5, 1.0)
    assert objective_progress(3, "staged:2", 5) == (0.0, pytest.approx(1 / 3))
    assert objective_progress(4, "alternate", 4) == (0.5, 1.0)
    with pytest.raises(ValueError):
        ProgressLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), (0.5, 0.5), 3)
