"""Adapter federation on Flower's simulation runtime: a pretrained start, LoRA adapters, int8 updates,
a local Hugging Face text tower; and a site whose tokenizer differs is refused."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from shared_model.checkpoint import ModelSource, load_checkpoint, save_checkpoint
from shared_model.config import ADAPTER_HEADS
from shared_model.model import parameter_counts
from sim.simulate import run_simulation
from tests.shared_model.text_models import save_small_bert
from tests.sim.federations import fed_config

pytestmark = pytest.mark.end_to_end


def test_adapter_federation_from_a_start_sends_little_and_learns(fed_data, tmp_path):
    # Prepare: a start with its own text tower (a small BERT the test saved, its own tokenizer)
    bert = save_small_bert(tmp_path / "bert")
    start = ModelSource(text_model=str(bert)).initial(seed=3)
    save_checkpoint(tmp_path / "start.safetensors", start)
    full_bytes = 4 * parameter_counts(start)["total"]
    cfg = fed_config(fed_data, tmp_path / "lora", rounds=3, schedule="contrastive", init=str(tmp_path / "start.safetensors"),
                     text_model=str(bert), adapter="lora:8", update_dtype="int8", lr=3e-3)
    # Execute
    doc = run_simulation(cfg)
    # Assert: every site sent at most 5 % of the full model's fp32 bytes, and the model learned
    sent = [s["bytes_up"] for r in doc["rounds"] for s in r["sites"].values() if s["status"] == "ok"]
    assert len(sent) == 3 * 2 and max(sent) <= 0.05 * full_bytes, (sent, full_bytes)
    assert doc["final"]["auc_macro"] > doc["initial"]["auc_macro"] + 0.05, (doc["initial"], doc["final"])
    assert doc["config"]["tokenizer-sha256"] == start.tokenizer.sha256
    report = (tmp_path / "lora" / "report.md").read_text()
    assert "`lora:8` adapters" in report and "int8" in report and start.tokenizer.sha256[:12] in report
    # The base stayed the start's; the merged export is a plain model with the adapters folded in
    final = load_file(str(tmp_path / "lora" / "model.safetensors"))
    base = {k.replace(".base_layer", ""): v for k, v in final.items() if ".lora_" not in k}
    frozen = [k for k in start.state_dict() if k in base and not k.startswith(ADAPTER_HEADS)]  # tied copies unsaved
    assert len(frozen) > 100 and all(torch.equal(base[k], start.state_dict()[k]) for k in frozen)
    assert not torch.equal(base["clip.image_proj.weight"], start.state_dict()["clip.image_proj.weight"])
    merged, meta = load_checkpoint(tmp_path / "lora" / "model-merged.safetensors")
    assert merged.adapter is None and meta["merged_from"] == "lora:8"
    assert merged.state_dict().keys() == start.state_dict().keys()
