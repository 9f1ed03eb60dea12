"""``m3fed finetune`` on an easy synthetic site: the classifier learns, starts at zero-shot, and the run
directory holds what results.json says; bad inputs end with one error line."""
from __future__ import annotations

import json

import pytest
import torch

from client.finetune.classifier import classifier_scores, load_classifier
from client.finetune.config import FinetuneConfig
from client.finetune.run import run_finetune
from client.data.dataset import decode
from client.data.evaldata import evaluation_inputs
from client.data.sources import load_records
from client.data.sources.records import DataReport
from shared_model.checkpoint import ModelSource, load_checkpoint, save_checkpoint
from shared_model.evaluate import auc_per_finding, macro


def _run(easy_site, out, **changes) -> dict:
    settings = dict(model="random", data=str(easy_site), out=str(out), reports=False, seed=0)
    return run_finetune(FinetuneConfig(**{**settings, **changes}))


def test_classifier_learns_the_findings_far_above_zero_shot(easy_site, tmp_path):
    # From random weights zero-shot diagnosis is at chance. Three findings with a plain image trace (heart
    # size, lung water, fluid at the base): measured ~0.88 after 100 updates of the head and top block.
    results = _run(easy_site, tmp_path, tune="top", lr=3e-3, batch_size=16, epochs=1, min_steps=100,
                   findings=("Cardiomegaly", "Edema", "Pleural Effusion"))
    zero, tuned = results["zero_shot"]["auc_macro"], results["final"]["auc_macro"]
    assert tuned > 0.75 and tuned > zero + 0.15, (zero, tuned, results["final"]["auc_per_label"])
    assert set(results["final"]["auc_per_label"]) == set(results["zero_shot"]["auc_per_label"]) == {
        "Cardiomegaly", "Edema", "Pleural Effusion"}
    assert results["classifier"]["steps"] == 100 and results["classifier"]["tune"] == "top"


def test_an_untrained_head_scores_exactly_as_zero_shot(easy_site, tmp_path):
    # No update: the head is the zero-shot prompt directions, so every finding's AUC is the zero-shot one.
    results = _run(easy_site, tmp_path, epochs=0)
    assert results["classifier"]["steps"] == 0
    for name, auc in results["zero_shot"]["auc_per_label"].items():
        assert results["final"]["auc_per_label"][name] == pytest.approx(auc, abs=1e-3), name


def test_run_directory_holds_the_models_config_and_results(easy_site, tmp_path):
    start = tmp_path / "start.safetensors"
    save_checkpoint(start, ModelSource(preset="tiny").initial(seed=5))
    _run(easy_site, tmp_path / "run", model=str(start), label_fraction=0.5, reports=True,
                   lm_epochs=1, epochs=1, min_steps=2)
    out = tmp_path / "run"
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "m3fed.results/1" and doc["mode"] == "finetune"
    assert doc["start"]["model"] == str(start)
    train = {r.patient_id for r in load_records(easy_site)[0] if r.split == "train"}
    assert doc["sampled"]["patients"] == round(0.5 * len(train)) and doc["sampled"]["of_patients"] == len(train)
    for block in (doc["final"], doc["zero_shot"]):  # reports from the start and from the tuned decoder
        assert set(block["bleu"]) == {"en", "zh"} and all(0 <= block["rougeL"][k] <= 1 for k in block["rougeL"])
    assert doc["report_generation"]["epochs"] == 1
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["label_fraction"] == 0.5 and config["model_config"]["preset"] == "tiny"
    model, meta = load_checkpoint(out / "model.safetensors")
    assert meta["finetune_config"]["label_fraction"] == 0.5
    # The image tower in model.safetensors is the start's (zero-shot and reports stay aligned); its decoder learnt.
    start_model, _ = load_checkpoint(start)
    tuned, begun = model.state_dict(), start_model.state_dict()
    assert all(torch.equal(tuned[k], begun[k]) for k in tuned if k.startswith("clip."))
    assert any(not torch.equal(tuned[k], begun[k]) for k in tuned if k.startswith("lm."))


def test_the_saved_classifier_scores_as_results_json_says(easy_site, tmp_path):
    results = _run(easy_site, tmp_path, epochs=2, min_steps=4)
    model, _ = load_checkpoint(tmp_path / "model.safetensors")
    clf = load_classifier(tmp_path / "classifier.safetensors", model)
    records = [r for r in load_records(easy_site)[0] if r.split == "test"]
    test = decode(records, model.cfg.image_size, DataReport(source="test"))
    inputs = evaluation_inputs(test, tuple(results["findings"]))
    auc = macro(auc_per_finding(classifier_scores(clf, inputs["images"], torch.device("cpu")), inputs["labels"]))
    assert auc == pytest.approx(results["final"]["auc_macro"], abs=1e-6)
