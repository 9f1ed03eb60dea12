"""``sim.apps.serverapp``: the run's own folder and data go to the ServerApp's run; ``flwr run .``
alone (no ``run-dir``) gets the default synthetic federation prepared first."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import sim.apps as apps
import sim.standalone as standalone


class _Grid:
    def get_node_ids(self):
        return [11, 12, 13]


def _run(monkeypatch, run_config: dict) -> tuple[list, list]:
    ran, prepared = [], []
    monkeypatch.setattr(apps, "run_server", lambda grid, context, **kwargs: ran.append(kwargs))
    monkeypatch.setattr(standalone, "prepare_standalone",
                        lambda run_id, *, num_sites: prepared.append((run_id, num_sites)) or (Path("/std"), "/synth"))
    apps.main(_Grid(), SimpleNamespace(run_config=run_config, run_id=7))
    return ran, prepared


def test_a_run_that_names_its_folder_runs_there(monkeypatch):
    ran, prepared = _run(monkeypatch, {"run-dir": "/runs/a", "data": "/data"})
    assert ran == [{"run_dir": Path("/runs/a"), "data": "/data"}] and prepared == []


def test_flwr_run_alone_prepares_one_site_per_supernode(monkeypatch):
    ran, prepared = _run(monkeypatch, {"run-dir": "", "data": ""})
    assert prepared == [(7, 3)] and ran == [{"run_dir": Path("/std"), "data": "/synth"}]
