"""The model card from a run's records: sites and their counts, each site's privacy line, the hashes,
the intervals, and what the card must never claim (patient counts a deployment does not have)."""
from __future__ import annotations

import hashlib
import json

from server.model_card import CARD_JSON, CARD_MD, write_model_card
from tests.server.run_records import central_run, checkpoint, deployment_run, simulation_run


def _card(run_dir) -> tuple[dict, str]:
    write_model_card(run_dir)
    return (json.loads((run_dir / CARD_JSON).read_text(encoding="utf-8")),
            (run_dir / CARD_MD).read_text(encoding="utf-8"))


def test_a_simulation_card_counts_each_site_and_states_its_privacy_line(tmp_path):
    # Prepare: site-1 under DP, site-2 and the text-only site-3 without
    run = tmp_path / "run"
    simulation_run(run, dp_sites=("site-1",), tokenizer_sha256="a" * 64)
    # Execute
    card, text = _card(run)
    # Assert: counts from each virtual site's manifest (training records, test records, patients)
    sites = {s["name"]: s for s in card["sites"]}
    assert (sites["site-1"]["records"], sites["site-1"]["test_records"], sites["site-1"]["patients"]) == (3, 1, 3)
    assert (sites["site-2"]["records"], sites["site-2"]["test_records"], sites["site-2"]["patients"]) == (2, 2, 4)
    assert sites["site-2"]["languages"] == ["zh"] and sites["site-1"]["modalities"] == ["CT", "CXR"]
    assert sites["site-3"]["modalities"] == [] and sites["site-3"]["images"] is False
    assert "| site-1 | 3 | 1 | 3 | en | CT, CXR | 2 | ε 1.957, δ 0.001 (record-level DP-SGD, prv accountant" in text
    assert "| site-2 | 2 | 2 | 4 | zh | CXR | 2 | no DP |" in text
    assert "| site-3 | 2 | 0 | 2 | en | none (reports only) | 2 | no DP |" in text
    assert card["privacy"]["sites"]["site-1"] == {**card["privacy"]["sites"]["site-1"], "dp": True, "delta": 0.001}
    assert card["privacy"]["secagg"] is False and "SecAgg+: off." in text
    # The weights' sha256 is the file's; the tokenizer's comes from the checkpoint's header
    digest = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
    assert card["model"]["use"] == "model.safetensors" and card["model"]["use_sha256"] == digest and digest in text
    assert card["model"]["tokenizer"]["sha256"] == "a" * 64 and "a" * 64 in text
    # The paired-bootstrap intervals the run computed, and honest use and limitations
    assert "federated − pooled: macro AUC -0.040 (95% interval -0.100 to +0.020, 1000 resamples)" in text
    assert "federated − best single site (site-1): macro AUC +0.050 (95% interval +0.010 to +0.090" in text
    assert "Not a medical device" in text and "synthetic" in text and "English (en), Chinese (zh)" in text
    assert card["config"]["strategy"] == "fedavg" and card["start"]["init"] is None


def test_every_dp_site_gets_its_own_epsilon_and_delta_and_secagg_is_stated(tmp_path):
    run = tmp_path / "run"
    simulation_run(run, dp_sites=("site-1", "site-2", "site-3"), secagg=True)
    card, text = _card(run)
    assert [line["dp"] for line in card["privacy"]["sites"].values()] == [True, True, True]
    assert text.count("ε 1.957, δ 0.001") == 3 and "no DP" not in text and "SecAgg+: on." in text


def test_a_deployment_card_has_declared_counts_no_patient_counts_and_each_sites_line(tmp_path):
    run = tmp_path / "run"
    deployment_run(run)
    card, text = _card(run)
    sites = {s["name"]: s for s in card["sites"]}
    # The server knows what each site declared, never its patients
    assert sites["site-1"]["records"] == 38 and sites["site-1"]["test_records"] == 10
    assert all(s["patients"] is None for s in sites.values())
    assert "| site-1 | 38 | 10 | not stated | en | CT, CXR | 2 | ε 7.485, δ 0.001" in text
    assert "| site-2 | 47 | 7 | not stated | zh | CXR | 2 | no DP |" in text
    # A text-only DP site whose statement never reached the server: the ε it reported, said as such
    assert card["privacy"]["sites"]["site-3"]["epsilon"] == 5.071 and card["privacy"]["sites"]["site-3"]["delta"] is None
    assert "ε 5.071 as the site reported it in round 2; its privacy statement (with δ) did not reach the server" in text
    # A site that never ran the bundle is not called a site without DP
    assert card["privacy"]["sites"]["site-x"]["line"].startswith("took no part")
    assert card["run"]["synthetic_data"] is None and "which the server never saw" in text
    assert "SecAgg+: on." in text and "Scored by 2 site(s) on their own test patients." in text
    assert "No interval: this run computed none" in text


def test_with_adapters_the_merged_file_is_the_one_to_use_and_both_are_hashed(tmp_path):
    run = tmp_path / "run"
    simulation_run(run)
    checkpoint(run / "model-merged.safetensors", seed=1, merged_from="lora:8")
    card, text = _card(run)
    files = {f["file"]: f["sha256"] for f in card["model"]["files"]}
    assert files == {name: hashlib.sha256((run / name).read_bytes()).hexdigest()
                     for name in ("model.safetensors", "model-merged.safetensors")}
    assert card["model"]["use"] == "model-merged.safetensors"
    assert card["model"]["use_sha256"] == files["model-merged.safetensors"]
    assert "- Use: `model-merged.safetensors`" in text


def test_the_start_checkpoint_is_named_with_its_hash_or_said_missing(tmp_path):
    run = tmp_path / "run"
    simulation_run(run)
    start = checkpoint(tmp_path / "start.safetensors", seed=7)
    doc = json.loads((run / "results.json").read_text())
    doc["config"].update({"init-checkpoint": str(tmp_path / "start.safetensors"),
                          "vit-weights": str(tmp_path / "gone.pth")})
    (run / "results.json").write_text(json.dumps(doc))
    card, text = _card(run)
    assert card["start"]["init"]["sha256"] == hashlib.sha256(start).hexdigest()
    assert card["start"]["vit_weights"] == {"path": str(tmp_path / "gone.pth"), "sha256": None,
                                            "note": "not found when the card was written"}
    assert f"Started from the checkpoint {tmp_path / 'start.safetensors'}" in text


def test_a_pooled_card_has_one_dataset_no_dp_and_no_secagg(tmp_path):
    run = tmp_path / "central"
    central_run(run)
    card, text = _card(run)
    assert card["run"]["kind"] == "pooled"
    assert card["sites"][0] | {"records": 518, "test_records": 118, "patients": 120} == card["sites"][0]
    assert card["privacy"]["sites"]["pooled"]["dp"] is False and "no DP (pooled training" in text
    assert card["privacy"]["secagg"] is None and "SecAgg+: n/a" in text
    assert "| pooled | 518 | 118 | 120 | en, zh | CT, CXR |" in text


def test_m3fed_card_rewrites_a_run_and_a_bad_folder_is_one_error_line(tmp_path, capsys):
    from sim.m3fed_command import main

    run = tmp_path / "run"
    central_run(run)
    assert main(["card", str(run)]) == 0 and (run / CARD_MD).is_file() and (run / CARD_JSON).is_file()
    assert main(["card", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "results.json: not found" in err and "Traceback" not in err
    (run / "results.json").write_text('{"schema": "m3fed.results/1", "config": {}, "final": 3}')
    assert main(["card", str(run)]) == 2
    assert "not a finished run's results" in capsys.readouterr().err
