"""The pooled baseline end to end on a small synthetic dataset: it learns, and writes the schema."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shared_model.checkpoint import load_checkpoint
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
