"""`m3fed sim --site-dp`: site-level DP through Flower's simulation runtime, stopping at its budget."""
from __future__ import annotations

import json

import dp_accounting
import pytest
from dp_accounting.rdp import RdpAccountant

from sim.simulate import SimConfig, run_simulation
from sim.synth import generate

pytestmark = pytest.mark.end_to_end


def _google_rdp(z: float, rounds: int, delta: float) -> float:
    acc = RdpAccountant()
    acc.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), rounds))
    return acc.get_epsilon(delta)


def test_site_level_dp_releases_two_rounds_then_stops_before_its_budget(tmp_path):
    # Prepare: z = 2, a budget between the ε of 2 and of 3 released rounds, 3 rounds asked for.
    generate(tmp_path / "data", patients=60, seed=7, difficulty=0.0)
    z, delta = 2.0, 1e-5
    budget = (_google_rdp(z, 2, delta) + _google_rdp(z, 3, delta)) / 2
    cfg = SimConfig(data=str(tmp_path / "data"), out=str(tmp_path / "run"), sites=3, rounds=3,
                    languages=("en", "zh", "en"), text_only_sites=1, local_epochs=1, batch_size=16, seed=0,
                    timeout=1200, compare=False, schedule="alternate", site_dp=z, site_dp_clip=0.5,
                    site_dp_delta=delta, site_dp_max_epsilon=budget)
    # Execute
    doc = run_simulation(cfg)
    # Assert: the two released rounds state ε as an independent accountant computes it, and the
    # third is not run: the run ends cleanly, with the reason, under the budget.
    released = [r for r in doc["rounds"] if r.get("site_dp")]
    assert [r["round"] for r in released] == [1, 2]
    for n, r in enumerate(released, start=1):
        assert r["site_dp"]["epsilon"] == pytest.approx(_google_rdp(z, n, delta), rel=1e-4)
        sent = 2 if r["objective"] == "contrastive" else 3  # the text-only site sits contrastive rounds out
        assert r["site_dp"]["sites_in_denominator"] == sent and r["site_dp"]["clipping_norm"] == 0.5
        assert all(s["status"] in ("ok", "no data for this objective") for s in r["sites"].values())
    assert "site-dp-max-epsilon" in doc["stopped"] and released[-1]["site_dp"]["epsilon"] <= budget
    assert doc["final"]["auc_macro"] is not None
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "Site-level DP" in report
    assert json.loads((tmp_path / "run" / "results.json").read_text())["rounds"][-1]["stopped"]


@pytest.mark.parametrize("flags, words", [(["--site-dp", "1", "--secagg"], "SecAgg+"),
                                          (["--site-dp", "1", "--strategy", "fedadam"], "fedavg or fedprox"),
                                          (["--site-dp", "1", "--site-dp-clip", "0"], "--site-dp-clip")])
def test_sim_refuses_site_dp_it_cannot_honour_with_a_usage_error(flags, words, tmp_path, capsys):
    from sim.m3fed_command import main

    assert main(["sim", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and not (tmp_path / "run").exists()
