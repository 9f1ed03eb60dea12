"""`m3fed sim --poison-sites`, `--dp-sites`, `--resume --rounds`: faulty and mixed federations on Flower's runtime."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sim.simulate import SimConfig, run_simulation
from sim.synth import generate

pytestmark = pytest.mark.end_to_end


def _config(data: Path, out: Path, **changes) -> SimConfig:
    # Contrastive rounds only (the AUC is the zero-shot one), no text-only site: every site trains
    # every round, so the poisoned one is rejected in each round from the middle (round 2) on.
    cfg = SimConfig(data=str(data), out=str(out), sites=3, rounds=3, languages=("en", "zh", "en"), text_only_sites=0,
                    local_epochs=2, batch_size=16, seed=0, timeout=1200, compare=False, schedule="contrastive",
                    partition="iid")
    return dataclasses.replace(cfg, **changes)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("poison_data")
    generate(root, patients=100, seed=5, difficulty=0.0)
    return root


@pytest.fixture(scope="module")
def clean(data, tmp_path_factory) -> dict:
    return run_simulation(_config(data, tmp_path_factory.mktemp("clean")))


@pytest.fixture(scope="module")
def nan_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nan") / "run"
    run_simulation(_config(data, out, poison_sites=1, poison="nan"))
    return out


def _check_poisoned(doc: dict, clean: dict) -> None:
    [site] = doc["fault_injection"]["poisoned"]["sites"]
    assert doc["fault_injection"]["poisoned"]["from_round"] == 2
    for r in doc["rounds"]:
        status = r["sites"][site]["status"]
        assert status.startswith("rejected: ") if r["round"] >= 2 else status == "ok", (r["round"], status)
        assert all(s["status"] == "ok" for name, s in r["sites"].items() if name != site)
    assert doc["final"]["auc_macro"] > doc["initial"]["auc_macro"] + 0.05  # it still learns
    assert abs(doc["final"]["auc_macro"] - clean["final"]["auc_macro"]) <= 0.02


def test_the_clean_federation_learns(clean):
    assert clean["final"]["auc_macro"] > clean["initial"]["auc_macro"] + 0.05
    assert "fault_injection" not in clean


def test_a_site_sending_nan_is_rejected_from_the_middle_round_and_costs_little_auc(nan_run, clean):
    doc = json.loads((nan_run / "results.json").read_text(encoding="utf-8"))
    _check_poisoned(doc, clean)
    [site] = doc["fault_injection"]["poisoned"]["sites"]
    assert "non-finite" in doc["rounds"][-1]["sites"][site]["status"]
    report = (nan_run / "report.md").read_text(encoding="utf-8")
    assert f"{site} sends `nan` replies from round 2 on" in report and "rejected: non-finite" in report


def test_a_finished_run_resumed_with_more_rounds_continues_to_them(nan_run):
    from sim.m3fed_command import main

    assert main(["sim", "--resume", str(nan_run), "--rounds", "4"]) == 0
    doc = json.loads((nan_run / "results.json").read_text(encoding="utf-8"))
    [site] = doc["fault_injection"]["poisoned"]["sites"]
    assert [r["round"] for r in doc["rounds"]] == [1, 2, 3, 4]
    assert doc["rounds"][3]["sites"][site]["status"].startswith("rejected: ")
    assert json.loads((nan_run / "sim-config.json").read_text())["rounds"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["inf", "scale", "shape", "weight"])
def test_every_kind_of_bad_reply_is_rejected_and_costs_little_auc(data, clean, tmp_path, kind):
    _check_poisoned(run_simulation(_config(data, tmp_path / "run", poison_sites=1, poison=kind)), clean)


POLICY = """\
unit: record
target_epsilon: 8.0
target_delta: 1.0e-3
accountant: prv
max_grad_norm: 1.0
noise_multiplier: 1.0
poisson_sampling: true
batch_size: 8
release: [num-examples]
"""


def test_a_mixed_federation_of_dp_and_non_dp_sites_completes(data, tmp_path):
    # The DP sites release ε and no loss, the other site its loss and no ε: the server federates them.
    (tmp_path / "policy.yaml").write_text(POLICY)
    cfg = _config(data, tmp_path / "run", rounds=2, local_epochs=1, batch_size=8, schedule="alternate",
                  text_only_sites=1, dp=str(tmp_path / "policy.yaml"), dp_sites=2)
    doc = run_simulation(cfg)
    for r in doc["rounds"]:
        for name in ("site-1", "site-2"):
            assert r["sites"][name]["status"] == "ok" and r["sites"][name]["epsilon"] > 0
            assert r["sites"][name]["loss"] is None  # withheld by the policy
        assert r["sites"]["site-3"]["epsilon"] is None
    assert doc["rounds"][1]["sites"]["site-3"]["status"] == "ok" and doc["rounds"][1]["sites"]["site-3"]["loss"] > 0
    assert sorted(doc["privacy"]) == ["site-1", "site-2"]
    assert not (tmp_path / "run" / "sites" / "site-3" / "ledger.jsonl").exists()
    assert "Without a privacy policy (no DP, ε null): site-3." in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("flags, words", [
    (["--dp-sites", "1"], "--dp-sites needs --dp"),
    (["--dp", "policy.yaml", "--dp-sites", "5"], "--dp-sites must be between 1 and --sites (4)"),
    (["--poison-sites", "4"], "--poison-sites must leave"),
    (["--aggregation", "median", "--secagg"], "sees only their sum"),
    (["--aggregation", "krum:1", "--site-dp", "1"], "site-level DP"),
    (["--aggregation", "trimmed:0.2", "--strategy", "fedadam"], "--strategy fedavg only"),
    (["--aggregation", "bulyan:1"], "needs at least 7 sites in every round"),
    # 4 sites, 2 of them text-only: contrastive rounds have 2, Krum needs 2F + 3.
    (["--aggregation", "krum:0", "--text-only-sites", "2"],
     "at least 3 sites in every round (2F + 3); the smallest round here has 2"),
    (["--max-update-rms", "-1"], "--max-update-rms"),
])
def test_sim_refuses_what_it_cannot_run_with_one_line(flags, words, tmp_path, capsys):
    from sim.m3fed_command import main

    code = main(["sim", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_resume_to_fewer_rounds_than_done_is_refused(tmp_path):
    from client.errors import DataError
    from sim.simulate import resume_config

    (tmp_path / "sim-config.json").write_text(json.dumps(dataclasses.asdict(SimConfig(data="d", out=str(tmp_path)))))
    (tmp_path / "state.json").write_text(json.dumps({"round": 5}))
    assert resume_config(tmp_path, rounds=7).rounds == 7
    with pytest.raises(DataError, match="cannot resume to --rounds 4: the run has completed 5 rounds"):
        resume_config(tmp_path, rounds=4)
