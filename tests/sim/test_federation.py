"""A real Flower simulation (``flwr run`` on the local simulation runtime): 3 sites, 2 rounds; resumed; SecAgg+."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.tokenizer import load_tokenizer
from sim.flower_launch import superlink_pids
from sim.simulate import run_simulation
from tests.sim.federations import fed_config

pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def federated_run(tmp_path_factory, fed_data) -> Path:
    out = tmp_path_factory.mktemp("fed_run")
    run_simulation(fed_config(fed_data, out, compare=True))
    return out


def test_results_schema_and_per_site_rounds(federated_run):
    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "m3fed.results/1" and doc["mode"] == "federated"
    assert [r["round"] for r in doc["rounds"]] == [1, 2]
    assert [r["objective"] for r in doc["rounds"]] == ["contrastive", "report-generation"]
    for r in doc["rounds"]:
        assert set(r["sites"]) == {"site-1", "site-2", "site-3"}
        for name, site in r["sites"].items():
            assert "epsilon" in site
            if name == "site-3" and r["objective"] == "contrastive":  # text-only: not sent the model at all
                assert site["status"] == "no data for this objective" and site["bytes_down"] == site["bytes_up"] == 0
                continue
            # A site sends back only the half of the model its objective trained.
            assert site["status"] == "ok" and 0 < site["bytes_up"] < site["bytes_down"]
    # What the text-only site declared before round 1 is why:
    assert doc["declarations"]["site-3"] == {"languages": ["en"], "modalities": [], "images": False,
                                             "objectives": ["report-generation"], "examples-contrastive": 0,
                                             "examples-report-generation": doc["site_records"]["site-3"]}
    assert doc["declarations"]["site-2"]["languages"] == ["zh"] and doc["declarations"]["site-2"]["images"]
    assert doc["seconds"]["declarations"] > 0
    assert set(doc["final"]["bleu"]) == {"en", "zh"}
    # No patient at two sites.
    owners = {}
    for site in ("site-1", "site-2", "site-3"):
        for line in (federated_run / "sites" / site / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
            owners.setdefault(json.loads(line)["patient_id"], set()).add(site)
    assert owners and all(len(s) == 1 for s in owners.values())


def test_comparison_client_evaluation_and_report(federated_run):
    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    base = doc["baselines"]
    # Pooled trains both objectives; single sites with images only, the text-only site has none.
    assert set(base["pooled"]["bleu"]) == {"en", "zh"} and base["pooled"]["auc_macro"] is not None
    assert set(base["single_sites"]) == {"site-1", "site-2"} and base["best_single_site"] in base["single_sites"]
    # The federated model's AUC difference to each, with its paired-bootstrap interval.
    for key, other in (("pooled", base["pooled"]), ("best_single_site", base["single_sites"][base["best_single_site"]])):
        diff = base["auc_difference"][key]
        assert diff["difference"] == pytest.approx(doc["final"]["auc_macro"] - other["auc_macro"], abs=1e-6)
        assert diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1] and diff["ci95"][0] < diff["ci95"][1]
    # Each image site evaluated the final model on its own test patients, in its own language.
    site_eval = doc["rounds"][-1]["site_eval"]
    assert set(site_eval) == {"site-1", "site-2", "site-3"}
    assert site_eval["site-1"]["test_images"] > 0 and site_eval["site-1"]["bleu4"] is not None
    # The text-only site has no test images: it is not sent the model to evaluate.
    assert site_eval["site-3"] == {"status": "not asked: the site declared no images", "test_images": 0}
    # Server-side, each image site's test patients are decoded in both languages (one zero-shot).
    by_site = doc["final"]["bleu4_by_group"]
    assert set(by_site["site-1"]) == {"en", "zh"} and set(by_site["site-2"]) == {"en", "zh"}
    report = (federated_run / "report.md").read_text(encoding="utf-8")
    assert "best single site (" in report and "cross-language" in report and "95% interval" in report
    for plot in ("metric_per_round.png", "site_contribution.png"):
        assert (federated_run / plot).read_bytes()[:4] == b"\x89PNG"


def test_every_model_is_selected_on_the_validate_split_and_says_which_round(federated_run):
    from rich.console import Console

    from shared_model.checkpoint import read_metadata
    from sim.m3fed_command import _print_comparison

    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    # ``alternate`` is one stage, selected on validate AUC (a tie goes to the later, more trained round).
    values = [r["validation"]["value"] for r in doc["rounds"]]
    best = max(range(len(values)), key=lambda i: (values[i], i))
    chosen = doc["selected"]
    assert chosen["metric"] == "auc" and chosen["round"] == doc["rounds"][best]["round"]
    assert chosen["value"] == values[best] and all(v is not None for v in values)
    assert read_metadata(federated_run / "model.safetensors")["round"] == chosen["round"]
    assert read_metadata(federated_run / "model-last.safetensors")["round"] == 2
    base = doc["baselines"]
    for model in (base["pooled"], *base["single_sites"].values()):  # the same rule for every arm
        assert model["selected"]["rule"] == "auto" and model["selected"]["round"] in (1, 2)
        assert [v["step"] for v in model["selected"]["validation"]] == sorted(
            v["step"] for v in model["selected"]["validation"])
    assert "## Model selection (validate split)" in (federated_run / "report.md").read_text(encoding="utf-8")
    console = Console(record=True, width=200)
    _print_comparison(console, doc)
    text = console.export_text()
    assert f"federated, round {chosen['round']}" in text
    assert f"pooled (same schedule), round {base['pooled']['selected']['round']}" in text  # one stage: one round
    assert "selected on the validate split: alternate round" in text


def test_global_model_changed_and_learned(federated_run):
    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    initial, final = doc["initial"], doc["final"]
    assert (federated_run / "model.safetensors").is_file()
    assert final["auc_macro"] > initial["auc_macro"] + 0.05, (initial, final["auc_per_label"])
    # The decoder starts at the uniform-guess loss ln(vocab) ~ 9.03 nats per token; after one
    # report-generation round every site's last local epoch must be at least one nat better.
    lm_losses = [site["loss"] for site in doc["rounds"][1]["sites"].values()]
    assert all(loss < math.log(load_tokenizer().vocab_size) - 1.0 for loss in lm_losses), lm_losses


def _kill_run(process: subprocess.Popen, flwr_home: Path) -> None:
    """SIGKILL the m3fed process and the SuperLink it started (with its simulation workers)."""
    pids = [process.pid, *superlink_pids(flwr_home)]
    for pid in pids:
        try:
            group = os.getpgid(pid)
            if group == os.getpgid(0):  # never our own group: that would kill pytest
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    process.wait(timeout=60)


def test_killed_after_round_one_resumes_to_the_same_model(federated_run, fed_data, tmp_path):
    out = tmp_path / "killed"
    cfg = fed_config(fed_data, out)
    # Prepare: start the run in its own process group; kill it once round 1 is on disk.
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.m3fed_command", "sim", "--data", str(fed_data), "--out", str(out), "--sites", "3",
         "--rounds", "2", "--languages", "en", "zh", "en", "--text-only-sites", "1", "--local-epochs", "4",
         "--batch-size", "16", "--seed", "0", "--no-compare", "--schedule", "alternate", "--partition", "iid"], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 900
        while not (out / "state.json").is_file() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert json.loads((out / "state.json").read_text())["round"] == 1
    finally:
        _kill_run(process, out / ".flwr")
    assert not (out / "results.json").exists()  # it really died mid-run

    # Execute
    resumed = run_simulation(cfg, resume=True)

    # Assert: rounds contiguous, none repeated; weights equal the uninterrupted run's.
    assert [r["round"] for r in resumed["rounds"]] == [1, 2]
    reference = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    assert resumed["initial"] == reference["initial"]
    a, b = load_file(str(out / "model.safetensors")), load_file(str(federated_run / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_secagg_run_trains_the_same_model_as_the_plain_run(federated_run, fed_data, tmp_path):
    # Prepare: the same seeded federation, the sites' updates now through Flower's SecAgg+.
    out = tmp_path / "secagg"
    # Execute
    run_simulation(fed_config(fed_data, out, secagg=True))
    # Assert: every round went through the protocol, and the server ended with the plain run's
    # model up to the stated quantisation error (carried through 2 rounds of training).
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for r in doc["rounds"]:
        sent = 2 if r["objective"] == "contrastive" else 3  # the text-only site is not sent contrastive rounds
        assert r["secagg"]["completed"] and r["secagg"]["sites_aggregated"] == sent, r["secagg"]
        assert 0 < r["secagg"]["quantization_error_bound"] < 1e-4
        assert all(s["status"] in ("ok", "no data for this objective") for s in r["sites"].values()), r["sites"]
    secure, plain = load_file(str(out / "model.safetensors")), load_file(str(federated_run / "model.safetensors"))
    torch.manual_seed(0)  # the server's initial model (seed 0)
    initial = build_model(get_preset("tiny")).state_dict()
    worst = max(float((secure[k].float() - plain[k].float()).abs().max()) for k in plain)
    moved = max(float((plain[k].float() - initial[k].float()).abs().max()) for k in plain)
    assert worst < 1e-3 < moved, (worst, moved)


def test_the_model_card_lists_each_site_its_counts_no_dp_and_the_intervals(federated_run):
    import hashlib

    card = json.loads((federated_run / "model_card.json").read_text(encoding="utf-8"))
    text = (federated_run / "MODEL_CARD.md").read_text(encoding="utf-8")
    doc = json.loads((federated_run / "results.json").read_text(encoding="utf-8"))
    sites = {s["name"]: s for s in card["sites"]}
    assert set(sites) == {"site-1", "site-2", "site-3"}
    for name, site in sites.items():  # training records as partitioned; patients counted at the site's manifest
        assert site["records"] == doc["site_records"][name] and site["patients"] > 0
        assert f"| {name} | {site['records']} | {site['test_records']} | {site['patients']} |" in text
        assert card["privacy"]["sites"][name]["line"] == "no DP"
    assert sites["site-2"]["languages"] == ["zh"] and sites["site-3"]["modalities"] == []
    weights = federated_run / "model.safetensors"
    assert card["model"]["use_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert len(card["metrics"]["intervals"]) == 2 and "95% interval" in text and "Not a medical device" in text
    # Each virtual site holds the hash of the run's model, not a copy of it
    for name in sites:
        assert (federated_run / "sites" / name / "model" / "model.sha256").read_text().split()[0] == \
            card["model"]["use_sha256"]
