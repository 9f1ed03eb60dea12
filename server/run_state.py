"""What a federated run leaves on disk after every round, so ``--resume`` loses and repeats nothing.

After round r: ``strategy.safetensors`` (a server optimiser's moments, FedAdam only),
``model-last.safetensors`` (the global weights after round r, with the round in its header), then
``state.json`` (round r, the per-round log, the initial metrics, the selection's state), each
written to a temporary file and renamed, so a crash leaves either round r-1's pair or round r's,
never a mix. ``model.safetensors`` is the *selected* model (``shared_model.selection``): written
whenever a round is the best of its stage so far, with its round in the header.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from shared_model.checkpoint import load_weights_into, read_metadata, save_checkpoint
from shared_model.model import M3FM

STATE = "state.json"
WEIGHTS = "model.safetensors"  # the selected model
LAST = "model-last.safetensors"  # the last round's global weights (what --resume continues from)
MERGED = "model-merged.safetensors"  # with adapters: the selected weights with them folded in, for inference
STRATEGY = "strategy.safetensors"


def save_round(run_dir: Path, model: M3FM, *, server_round: int, rounds: list[dict], initial: dict,
               strategy_arrays: dict[str, np.ndarray] | None = None, selection: dict | None = None) -> None:
    if strategy_arrays:  # a server optimiser's moments (FedAdam): resumed with the weights
        tmp = run_dir / f".{STRATEGY}.tmp"
        save_file({k: np.ascontiguousarray(v) for k, v in strategy_arrays.items()}, str(tmp),
                  metadata={"round": str(server_round)})
        os.replace(tmp, run_dir / STRATEGY)
    save_weights(run_dir / LAST, model, server_round=server_round)
    tmp = run_dir / f".{STATE}.tmp"
    tmp.write_text(json.dumps({"round": server_round, "rounds": rounds, "initial": initial,
                               **({"selection": selection} if selection else {})}, indent=2))
    os.replace(tmp, run_dir / STATE)


def save_weights(path: Path, model: M3FM, *, server_round: int, **extra) -> None:
    """A checkpoint with its round in the header, written to a temporary file and renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    save_checkpoint(tmp, model, extra={"round": server_round, **extra})
    os.replace(tmp, path)


def load_round(run_dir: Path, model: M3FM) -> dict | None:
    """Load the last completed round into ``model``; None when the run has not completed one."""
    path = run_dir / STATE
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    last = run_dir / LAST if (run_dir / LAST).is_file() else run_dir / WEIGHTS  # a run from before issue M
    if read_metadata(last).get("round") != state["round"]:
        raise ValueError(f"{run_dir}: {last.name} and {STATE} disagree on the last round; refusing to resume")
    load_weights_into(model, last)
    state["strategy_arrays"] = load_file(str(run_dir / STRATEGY)) if (run_dir / STRATEGY).is_file() else {}
    return state


def strategy_arrays(strategy) -> dict[str, np.ndarray]:
    """The server optimiser state of Flower's FedOpt family (first and second moments), if any."""
    out = {}
    for name in ("m_t", "v_t"):
        for key, value in (getattr(strategy, name, None) or {}).items():
            out[f"{name}/{key}"] = value
    return out


def restore_strategy(strategy, arrays: dict[str, np.ndarray]) -> None:
    for name in ("m_t", "v_t"):
        moments = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{name}/")}
        if moments:
            setattr(strategy, name, moments)
