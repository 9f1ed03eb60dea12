"""The ``m3fed.results/1`` file every run writes (pooled or federated)."""
from __future__ import annotations

import json
import math
from pathlib import Path

SCHEMA = "m3fed.results/1"


def _clean(value):
    """JSON has no NaN: an undefined metric (e.g. one-class labels) is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_results(run_dir: Path, *, mode: str, config: dict, final: dict, rounds: list | None = None,
                  baselines: dict | None = None, data_report: dict | None = None, **extra) -> Path:
    doc = {"schema": SCHEMA, "mode": mode, "config": config, "final": final, "rounds": rounds or [],
           **({"baselines": baselines} if baselines else {}), "data_report": data_report or {}, **extra}
    path = run_dir / "results.json"
    path.write_text(json.dumps(_clean(doc), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def update_results(run_dir: Path, **extra) -> dict:
    """Add top-level entries (baselines, site specs) to a run's results.json; returns the whole document."""
    path = run_dir / "results.json"
    doc = {**json.loads(path.read_text(encoding="utf-8")), **extra}
    path.write_text(json.dumps(_clean(doc), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return _clean(doc)
