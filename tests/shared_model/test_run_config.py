"""The one run config: pyproject's table, ``m3fed sim``'s and ``m3fed run``'s defaults agree with ``RunConfig``."""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from shared_model.run_config import RunConfig

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_app_config_is_run_config_defaults():
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["flwr"]["app"]["config"]
    assert table == RunConfig().to_run_config()
    assert RunConfig.from_run_config(table) == RunConfig()


def test_simulator_defaults_are_run_config_defaults(tmp_path):
    from sim.simulate import run_config_of
    from sim.sim_config import SimConfig

    rc = run_config_of(SimConfig(data=str(tmp_path), out=str(tmp_path / "run")), tmp_path / "run", resume=False)
    # The simulation's own folder, site count and decoded-image store, and its sites' device (resolved: Ray
    # hides a GPU from a site whose resources ask for none).
    where = {"run-dir", "data", "progress-file", "min-sites", "device", "image-store"}
    defaults = RunConfig().to_run_config()
    assert {k: v for k, v in rc.items() if k not in where} == {k: v for k, v in defaults.items() if k not in where}


def test_deployment_submits_run_config_defaults_and_refuses_a_bad_key(tmp_path):
    from client.errors import DataError
    from server.remote import deployment_run_config

    rc = deployment_run_config(tmp_path, {"num-server-rounds": 2})
    assert RunConfig.from_run_config(rc) == RunConfig(num_server_rounds=2, run_dir=str(tmp_path.resolve()),
                                                      client_eval_every=1)
    with pytest.raises(DataError, match="unknown key.*num-rounds"):
        deployment_run_config(tmp_path, {"num-rounds": 2})
    with pytest.raises(DataError, match="batch-size must be int"):
        deployment_run_config(tmp_path, {"batch-size": "big"})


def test_round_trip_and_typing():
    run = RunConfig(num_server_rounds=3, schedule="alternate", secagg=True, drop_sites="0,2")
    assert RunConfig.from_run_config(run.to_run_config()) == run
    assert run.dropped == {0, 2} and run.poisoned == frozenset()
    typed = RunConfig.from_run_config({"num-server-rounds": 3.0, "lr": 1, "secagg": "true", "seed": "4"})
    assert (typed.num_server_rounds, typed.lr, typed.secagg, typed.seed) == (3, 1.0, True, 4)
    assert all(f.name.replace("_", "-") in run.to_run_config() for f in dataclasses.fields(RunConfig))


@pytest.mark.parametrize("rc, words", [
    ({"num-server-rounds": 0}, "num-server-rounds"),
    ({"num-server-rounds": 2.5}, "num-server-rounds must be int"),
    ({"schedule": "staged:0"}, "schedule must be"),
    ({"secagg": "maybe"}, "secagg must be bool"),
    ({"drop-sites": "1,x"}, "drop-sites takes"),
    ({"update-dtype": "bf16"}, "update-dtype must be one of fp32, fp16, int8"),
    ({"update-dtype": "int8", "secagg": True}, "SecAgg\\+ quantises the updates itself"),
    ({"adapter": "ia3"}, "adapter must be lora:R"),
])
def test_bad_values_are_refused_naming_the_key(rc, words):
    with pytest.raises(ValueError, match=words):
        RunConfig.from_run_config(rc)
