"""The data the federation test modules share."""
from __future__ import annotations

from pathlib import Path

import pytest

from sim.synth import generate


@pytest.fixture(scope="session")
def fed_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("fed_data")
    generate(data, patients=100, seed=5, difficulty=0.0)
    return data
