"""Flower Messages built outside a Flower process need a task identity (as in tests/server/conftest.py)."""
from __future__ import annotations

import pytest
from flwr.supercore.task_identity import TaskIdentity


@pytest.fixture(autouse=True)
def task_identity():
    names = ("_run_id", "_node_id", "_task_id")
    saved = [getattr(TaskIdentity, n) for n in names]
    for name in names:
        setattr(TaskIdentity, name, 1)
    yield
    for name, value in zip(names, saved):
        setattr(TaskIdentity, name, value)
