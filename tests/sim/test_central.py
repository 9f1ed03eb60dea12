"""The pooled baseline end to end on a small synthetic dataset: it learns, and writes the schema."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from shared_model.checkpoint import load_checkpoint
from shared_model.findings import DEFAULT_EVAL_LABELS
from shared_model.objectives import TrainConfig
from sim.central import CentralConfig, run_central
from sim.synth import generate

pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def central_run(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("easy")
    generate(data, patients=160, seed=11, difficulty=0.0)
    out = tmp_path_factory.mktemp("run")
    run_central(CentralConfig(data=str(data), out=str(out), contrastive_epochs=6, lm_epochs=3, seed=0,
                              train=TrainConfig(batch_size=32, lm_batch_size=16, lm_lr=3e-3)))
    return out


def test_results_file_follows_the_schema(central_run):
    doc = json.loads((central_run / "results.json").read_text(encoding="utf-8"))
    assert doc["schema"] == "m3fed.results/1" and doc["mode"] == "central"
    final = doc["final"]
    assert set(final["bleu"]) == {"en", "zh"} and set(final["rougeL"]) == {"en", "zh"}
    for lang in ("en", "zh"):
        assert set(final["bleu"][lang]) == {"bleu1", "bleu2", "bleu3", "bleu4"}
        assert all(0.0 <= v <= 1.0 for v in final["bleu"][lang].values())
    assert all(0.0 <= v <= 1.0 for v in final["auc_per_label"].values())
    assert doc["config"]["model"]["preset"] == "tiny"
    assert doc["data_report"]["skipped"] == 0
    model, meta = load_checkpoint(central_run / "model.safetensors")
    assert meta["run_config"]["seed"] == 0


def test_model_learned_zero_shot_diagnosis_and_reporting(central_run):
    final = json.loads((central_run / "results.json").read_text(encoding="utf-8"))["final"]
    # Chance is 0.5 AUC; an untrained model's generated reports share almost no 4-grams.
    assert final["auc_macro"] > 0.70, final["auc_per_label"]
    assert not math.isnan(final["auc_macro"])
    for lang in ("en", "zh"):
        assert final["bleu"][lang]["bleu4"] > 0.10, final["examples"][lang]


def test_pooled_run_keeps_and_reports_its_best_validation_epoch(tmp_path):
    """A learning rate too high for the data: validation rises, then falls. With patience 1 the
    contrastive stage stops at its first epoch without improvement; the run keeps the best epoch's
    weights (not the last) and reports test metrics for them."""
    from client.data.evaldata import evaluation_inputs
    from shared_model.evaluate import evaluate_model
    from sim.central import load_split_examples

    data = tmp_path / "data"
    generate(data, patients=120, seed=11, difficulty=0.0)
    out = tmp_path / "run"
    run_central(CentralConfig(data=str(data), out=str(out), contrastive_epochs=4, lm_epochs=1, seed=0, patience=1,
                              train=TrainConfig(batch_size=32, lm_batch_size=16, lr=5e-2)))
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    contrastive = [h for h in doc["history"] if h["objective"] == "contrastive"]
    values = [h["validation"]["value"] for h in contrastive]
    best = max(range(len(values)), key=lambda i: (values[i], i))
    # Stopped at the first epoch without improvement, before the planned 4; the last epoch is worse.
    assert len(values) < 4 and values[-1] < values[best], values
    stage = doc["selected"]["stages"][0]
    assert stage["epoch"] == best + 1 and stage["stopped_after"] == len(values) and stage["value"] == values[best]
    # The saved model is the selected epoch's: its validation AUC is the one recorded for that epoch,
    # and the test metrics in results.json are its own.
    model, _ = load_checkpoint(out / "model.safetensors")
    train, validate, test, _ = load_split_examples(str(data), model.cfg.image_size, ("en", "zh"))
    again = evaluate_model(model, **evaluation_inputs(validate, DEFAULT_EVAL_LABELS), bank_texts=["x"],
                           device=torch.device("cpu"), reports=False)
    assert again["auc_macro"] == pytest.approx(values[best], abs=1e-6)
    tested = evaluate_model(model, **evaluation_inputs(test, DEFAULT_EVAL_LABELS), bank_texts=["x"],
                            device=torch.device("cpu"), reports=False)
    assert tested["auc_macro"] == pytest.approx(doc["final"]["auc_macro"], abs=1e-6)


def test_the_pooled_run_writes_its_model_card(central_run):
    import hashlib

    card = json.loads((central_run / "model_card.json").read_text(encoding="utf-8"))
    doc = json.loads((central_run / "results.json").read_text(encoding="utf-8"))
    assert card["run"]["kind"] == "pooled" and card["sites"][0]["patients"] == doc["data_report"]["patients"]
    assert card["sites"][0]["records"] == doc["data_report"]["by_split"]["train"]
    assert card["model"]["use_sha256"] == hashlib.sha256((central_run / "model.safetensors").read_bytes()).hexdigest()
    assert card["privacy"]["sites"]["pooled"]["dp"] is False
    assert "no DP" in (central_run / "MODEL_CARD.md").read_text(encoding="utf-8")
