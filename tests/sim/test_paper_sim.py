"""``m3fed sim --preset paper --device cpu`` on a 2-core CPU machine: a quick look with a few records per
site completes with a valid results.json (slow: the paper model is 266 M values)."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_the_paper_preset_federates_a_few_records_per_site_on_the_cpu(fed_data, tmp_path, capsys):
    from sim.m3fed_command import main

    out = tmp_path / "run"
    code = main(["sim", "--preset", "paper", "--device", "cpu", "--sites", "2", "--rounds", "1",
                 "--max-records-per-site", "8", "--no-compare", "--data", str(fed_data), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "m3fed.results/1" and doc["config"]["preset"] == "paper"
    assert doc["config"]["device"] == "cpu" and doc["config"]["eval-max-records"] == 16
    assert doc["site_records"] == {"site-1": 8, "site-2": 8}
    assert [r["round"] for r in doc["rounds"]] == [1] and doc["rounds"][0]["sites"]["site-1"]["status"] == "ok"
    assert 0.0 <= doc["final"]["auc_macro"] <= 1.0
    assert doc["data_report"]["images"] <= 16  # the server scored a sample of the test split
