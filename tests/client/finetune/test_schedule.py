"""The fine-tuning schedule: any number of updates (torch's OneCycleLR fails at exactly 10), each group its own peak."""
from __future__ import annotations

import pytest
import torch

from client.finetune.schedule import warmup_cosine


@pytest.mark.parametrize("steps", [1, 2, 10, 37])
def test_warm_up_then_decay_for_any_number_of_updates(steps):
    head, tower = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [head], "lr": 1e-2}, {"params": [tower], "lr": 1e-4}])
    scheduler = warmup_cosine(optimizer, steps)
    seen = []
    for _ in range(steps):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert all(h == pytest.approx(100 * t) for h, t in seen)  # the groups keep their ratio
    peak = max(range(steps), key=lambda i: seen[i][0])
    assert seen[peak][0] == pytest.approx(1e-2)
    assert all(seen[i][0] >= seen[i + 1][0] for i in range(peak, steps - 1))  # decays after the peak
    if steps >= 10:
        assert seen[-1][0] < 0.1 * seen[peak][0]
    if steps >= 20:  # at least two warm-up updates
        assert seen[0][0] < seen[peak][0]
