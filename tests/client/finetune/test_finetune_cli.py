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
])
def test_bad_input_gives_one_error_line(easy_site, tmp_path, capsys, change, says):
    (tmp_path / "NOT_A_CHECKPOINT").write_text("hello")
    (tmp_path / "EMPTY_DIR").mkdir()
    change = [str(tmp_path / c) if c in ("MISSING", "NOT_A_CHECKPOINT", "EMPTY_DIR") else c for c in change]
    argv = ["finetune", "--model", "random", "--data", str(easy_site), "--out", str(tmp_path / "run"), *change]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert not (tmp_path / "run" / "results.json").exists()
