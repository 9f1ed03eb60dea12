"""Shared fixtures: small synthetic MIMIC-CXR trees, generated once per session; one torch thread."""
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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    two threads on a shared 2-core machine thrash (measured ~30x slower under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
