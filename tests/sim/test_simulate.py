"""``m3fed sim --resume``: the configuration comes back from the run directory (sim/simulate.py)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from client.errors import DataError
from sim.simulate import SimConfig, resume_config


def test_resume_reads_back_the_configuration_and_fills_what_an_earlier_version_did(tmp_path):
    cfg = SimConfig(data="data", out=str(tmp_path), batch_size=24, keep_optimizer=True)
    (tmp_path / "sim-config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    assert resume_config(tmp_path) == cfg
    # A run written before report batches and kept optimiser state existed continues as it started.
    older = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("lm_batch_size", "keep_optimizer")}
    (tmp_path / "sim-config.json").write_text(json.dumps(older))
    resumed = resume_config(tmp_path)
    assert resumed.lm_batch_size == 24 and resumed.keep_optimizer is False


def test_secagg_shares_reach_the_server_as_a_count_or_a_fraction(tmp_path):
    from server.secagg import SecAggConfig
    from shared_model.run_config import RunConfig
    from sim.simulate import run_config_of

    def shares(value: float):
        rc = run_config_of(SimConfig(data="data", out=str(tmp_path), secagg=True, secagg_shares=value), tmp_path,
                           resume=False)
        return SecAggConfig.from_run(RunConfig.from_run_config(rc)).num_shares
    assert shares(5.0) == 5 and isinstance(shares(5.0), int)  # Flower reads an int as a count of sites
    assert shares(0.5) == 0.5 and shares(1.0) == 1.0  # a float as a fraction of the round's sites
    with pytest.raises(ValueError, match="secagg-shares"):
        SimConfig(data="data", out=str(tmp_path), secagg_shares=0)


def test_init_checkpoint_reaches_the_server_resolved_and_a_bad_one_is_refused_before_the_run(tmp_path, monkeypatch):
    from shared_model.checkpoint import save_checkpoint
    from shared_model.config import get_preset
    from shared_model.model import build_model
    from sim.simulate import run_config_of

    save_checkpoint(tmp_path / "public.safetensors", build_model(get_preset("tiny")))
    monkeypatch.chdir(tmp_path)
    rc = run_config_of(SimConfig(data="data", out="out", init="public.safetensors"), tmp_path, resume=False)
    assert rc["init-checkpoint"] == str(tmp_path / "public.safetensors")  # the SuperLink runs elsewhere
    assert run_config_of(SimConfig(data="data", out="out"), tmp_path, resume=False)["init-checkpoint"] == ""
    with pytest.raises(ValueError, match="--init: .*missing.safetensors: not a readable safetensors file"):
        SimConfig(data="data", out="out", init="missing.safetensors")
    with pytest.raises(ValueError, match=r"--init: .*another model config: .*preset 'tiny' \(this run: 'paper'\)"):
        SimConfig(data="data", out="out", preset="paper", init="public.safetensors")
    # A run whose checkpoint has gone cannot resume (its baselines start from it), and says so.
    cfg = SimConfig(data="data", out="out", init="public.safetensors")
    (tmp_path / "sim-config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    (tmp_path / "public.safetensors").unlink()
    with pytest.raises(DataError, match="cannot resume: --init: .*not a readable safetensors file"):
        resume_config(tmp_path)


def test_the_cli_defaults_do_not_import_torch():
    # `m3fed sim --help` builds SimConfig's defaults: with no model files named there is nothing to
    # read, and importing torch, timm and transformers took it from about 1 s to 14 s.
    import subprocess
    import sys

    code = ("import sys; from sim.sim_config import SimConfig; SimConfig(data='', out=''); "
            "print(sorted(m for m in ('torch', 'timm', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", ["sim", "central"])
@pytest.mark.parametrize("flags, message", [(["--patience", "-1"], "--patience must be a whole number >= 0"),
                                            (["--select", "loss"], "invalid choice: 'loss'")])
def test_bad_selection_settings_get_one_clear_line(tmp_path, capsys, command, flags, message):
    from sim.m3fed_command import main

    try:
        code = main([command, "--data", str(tmp_path), "--out", str(tmp_path / "run"), *flags])
    except SystemExit as exc:  # argparse's own refusal of a choice
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_selection_settings_reach_the_server(tmp_path):
    from shared_model.run_config import RunConfig
    from sim.simulate import run_config_of

    rc = run_config_of(SimConfig(data="data", out=str(tmp_path), select="bleu4", patience=3), tmp_path, resume=False)
    run = RunConfig.from_run_config(rc)
    assert (run.select, run.patience) == ("bleu4", 3)
    with pytest.raises(ValueError, match="^patience must be a whole number"):
        RunConfig.from_run_config({**rc, "patience": -2})


def test_a_second_run_on_the_same_data_decodes_nothing_it_maps_the_store(fed_data, tmp_path):
    from pathlib import Path

    from rich.console import Console

    from sim.simulate import fill_store, prepare_sites

    store = tmp_path / "store"
    counts = []
    for run in ("first", "second"):  # two runs, each with its own folder, on the same data
        cfg = SimConfig(data=str(fed_data), out=str(tmp_path / run), image_cache=str(store), workers=2,
                        max_records_per_site=12)
        prepare_sites(cfg, Path(cfg.out))
        console = Console(record=True, width=200)
        counts.append(fill_store(cfg, Path(cfg.out), [s.name for s in cfg.site_specs()], console))
    first, second = counts
    assert first["decoded"] > 0 and first["hits"] == 0
    assert second["decoded"] == 0 and second["hits"] == first["decoded"]  # nothing decoded again
    assert f"images: 0 decoded, {second['hits']} from the decoded-image store" in console.export_text()
    run = json.loads(run_config_json(tmp_path / "second"))
    assert run["image-store"] == str(store.resolve())  # the sites and the server read the same store


def run_config_json(out) -> str:
    from sim.simulate import resume_config, run_config_of

    return json.dumps(run_config_of(resume_config(out), out, resume=False))


def test_a_store_folder_that_cannot_be_written_is_one_error_line(tmp_path, capsys):
    from sim.m3fed_command import main

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    for command in ("sim", "central"):
        code = main([command, "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                     "--image-cache", str(blocked / "store")])
        err = capsys.readouterr().err
        assert code == 2 and "--image-cache: cannot write the decoded-image store there" in err, err
        assert "Traceback" not in err and err.count("\n") == 1
