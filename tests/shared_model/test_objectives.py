"""FedProx's proximal term, added by wrapping the optimiser."""
from __future__ import annotations

import torch

from shared_model.objectives import add_proximal_term


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
