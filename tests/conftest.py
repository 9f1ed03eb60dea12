"""Shared fixtures: small synthetic MIMIC-CXR trees, generated once per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


@pytest.fixture(scope="session")
def small_mimic(tmp_path_factory) -> Path:
    """30 patients in the real MIMIC-CXR layout (read-only: copy before breaking it)."""
    from sim.synth import generate

    out = tmp_path_factory.mktemp("mimic_small")
    generate(out, patients=30, seed=3)
    return out
