"""``m3fed finetune``'s bad inputs: one ``error:`` line naming what is wrong, exit status 2, nothing written."""
from __future__ import annotations

import pytest

from sim.m3fed_command import main


@pytest.mark.parametrize("change, says", [
    (["--label-fraction", "0"], "--label-fraction must be in (0, 1]"),
    (["--label-fraction", "1.5"], "--label-fraction must be in (0, 1]"),
    (["--label-fraction", "nan"], "--label-fraction must be in (0, 1]"),
    (["--epochs", "-1"], "--epochs"),
    (["--findings", "Headache"], "--findings: Headache"),
    (["--model", "MISSING"], "MISSING: no such file or run directory"),
    (["--model", "NOT_A_CHECKPOINT"], "not a readable safetensors file"),
    (["--model", "EMPTY_DIR"], "not a finished m3fed run directory"),
    (["--data", "MISSING"], "data path does not exist"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--out", "SIM_RUN"], "--out holds another run's results.json (mode 'federated')"),
])
def test_bad_input_gives_one_error_line(easy_site, tmp_path, capsys, change, says):
    (tmp_path / "NOT_A_CHECKPOINT").write_text("hello")
    (tmp_path / "EMPTY_DIR").mkdir()
    (tmp_path / "SIM_RUN").mkdir()
    (tmp_path / "SIM_RUN" / "results.json").write_text('{"mode": "federated"}')
    change = [str(tmp_path / c) if c in ("MISSING", "NOT_A_CHECKPOINT", "EMPTY_DIR", "SIM_RUN") else c
              for c in change]
    argv = ["finetune", "--model", "random", "--data", str(easy_site), "--out", str(tmp_path / "run"), *change]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert not (tmp_path / "run" / "results.json").exists()
    assert (tmp_path / "SIM_RUN" / "results.json").read_text() == '{"mode": "federated"}'  # left as it was


def test_out_may_not_be_the_starting_models_run_directory(easy_site, tmp_path, capsys):
    from shared_model.checkpoint import ModelSource, save_checkpoint

    save_checkpoint(tmp_path / "model.safetensors", ModelSource(preset="tiny").initial(seed=0))
    before = (tmp_path / "model.safetensors").read_bytes()
    assert main(["finetune", "--model", str(tmp_path), "--data", str(easy_site), "--out", str(tmp_path)]) == 2
    assert "where the starting model is" in capsys.readouterr().err
    assert (tmp_path / "model.safetensors").read_bytes() == before
