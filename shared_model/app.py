"""The Flower app itself: its folder, its home for state, and how a run config value is written.

``APP_DIR`` is the folder ``flwr run`` builds the app from (the repository root: its
``pyproject.toml`` names the ServerApp, the ClientApp and the run config). ``flwr run .`` on its
own keeps the default synthetic federation under ``m3fed_home()`` (``$M3FED_HOME``, or
``~/.m3fed``): each run in ``standalone_run_dir(run id)``, where the ServerApp prepares it
(``sim.standalone``) and the sites find it from the run id.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent


def m3fed_home() -> Path:
    return Path(os.environ.get("M3FED_HOME") or Path.home() / ".m3fed")


def standalone_run_dir(run_id: int) -> Path:
    return m3fed_home() / "flwr-runs" / str(run_id)


def toml_value(value) -> str:
    """``value`` as ``flwr run --run-config "key=value ..."`` reads it (TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
