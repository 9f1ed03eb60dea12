"""Fixtures shared by the site-side tests that need a trained model."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.shared_model.trained_tiny import trained_tiny


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run directory holding the trained tiny model, as `m3fed central` / `sim` leave one."""
    run = tmp_path_factory.mktemp("run")
    shutil.copy(trained_tiny()[1], run / "model.safetensors")
    return run
