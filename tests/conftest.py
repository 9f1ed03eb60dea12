"""Shared fixtures: small synthetic MIMIC-CXR trees, generated once per session; one torch thread everywhere."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
# One torch thread in every test process and in every process a test starts (Flower's SuperLink, Ray's
# actors, ClientApps, site daemons), set before torch is imported: `make test` runs two workers on two
# cores, and two threads per process on a shared 2-core machine thrash (measured ~30x slower under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# m3fed's per-user folder (the decoded-image store, standalone runs): one of its own for each test process,
# never the user's ~/.m3fed.
os.environ.setdefault("M3FED_HOME", tempfile.mkdtemp(prefix="m3fed-home-"))


@pytest.fixture(scope="session")
def small_mimic(tmp_path_factory) -> Path:
    """30 patients in the real MIMIC-CXR layout (read-only: copy before breaking it)."""
    from sim.synth import generate

    out = tmp_path_factory.mktemp("mimic_small")
    generate(out, patients=30, seed=3)
    return out




def pytest_collection_modifyitems(items):
    # The end-to-end modules take minutes each and the rest seconds: handed out first (xdist keeps
    # this order, one file per worker), the short ones fill in behind them and both workers finish
    # together, instead of one worker starting a 4-minute file while the other has nothing left.
    items.sort(key=lambda item: item.get_closest_marker("end_to_end") is None)
