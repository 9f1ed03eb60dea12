"""``flwr run .`` on its own: the default synthetic federation, prepared by the ServerApp.

Without ``run-dir`` in the run config there is no ``m3fed sim`` to partition the data, so the
ServerApp does it: the default synthetic dataset (built once, reused) split over one virtual site
per SuperNode, in ``$M3FED_HOME/flwr-runs/<run id>`` (``~/.m3fed`` by default). Sites find the
same folder from the run id.
"""
from __future__ import annotations

from pathlib import Path

from shared_model.app import m3fed_home, standalone_run_dir


def prepare_standalone(run_id: int, *, num_sites: int) -> tuple[Path, str]:
    from sim.simulate import SimConfig, prepare_sites
    from sim.synth import generate

    if num_sites < 2:
        raise RuntimeError(f"the federation has {num_sites} SuperNode(s); m3fed needs at least 2 sites")
    data = m3fed_home() / "synth-default"
    if not (data / "m3fed-synth.json").is_file():
        generate(data, seed=0)
    run_dir = standalone_run_dir(run_id)
    prepare_sites(SimConfig(data=str(data), out=str(run_dir), sites=num_sites), run_dir)
    return run_dir, str(data)
