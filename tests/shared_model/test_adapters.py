"""Low-rank adapters (--adapter lora:R): what trains, what is sent, merging and checkpoints
(shared_model/adapters.py, shared_model/config.py trained_keys, shared_model/checkpoint.py)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from shared_model.adapters import AdapterSpec
from shared_model.checkpoint import ModelSource, load_checkpoint, load_weights_into, save_checkpoint
from shared_model.config import ADAPTER_HEADS, TRAINED_PREFIX, trained_keys
from shared_model.errors import CheckpointError
from shared_model.objectives import contrastive_epoch, lm_epoch, make_optimizer
from shared_model.train_config import TrainConfig

# The parameters that train in full beside the adapters (the module docstring of adapters.py).
HEADS = {"clip.logit_scale", "clip.image_proj.weight", "clip.text_proj.weight", "lm.prefix.weight", "lm.prefix.bias"}
TEXTS = ["no pleural effusion.", "右下肺见斑片状阴影。"]


@pytest.fixture(scope="module")
def plain():
    return ModelSource().initial(seed=0).eval()


@pytest.fixture(scope="module")
def adapted():
    """Read-only: tests that change weights build their own."""
    return ModelSource(adapter="lora:4").initial(seed=0).eval()


def _inputs(model):
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 1, model.cfg.image_size, model.cfg.image_size, generator=gen)
    ids, mask = model.tokenizer.encode_text(TEXTS, model.cfg.max_text_len)
    return images, ids, mask


def _outputs(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image and text embeddings, and MultiMedLM's per-report loss on the text embeddings."""
    images, ids, mask = _inputs(model)
    targets, _ = model.tokenizer.encode_target(TEXTS, ["en", "zh"], model.cfg.max_report_len)
    with torch.no_grad():
        text = model.clip.encode_text(ids, mask)
        return model.clip.encode_image(images), text, model.lm.per_example_loss(text, targets)


def test_adapter_spec_parses_lora_r_and_refuses_anything_else():
    assert AdapterSpec.parse("lora:8") == AdapterSpec(8) and str(AdapterSpec.parse("lora:8")) == "lora:8"
    assert AdapterSpec.parse("") is None  # no adapters: the full model trains
    for text in ("lora:0", "lora:x", "8", "lora:", "lora:2000"):
        with pytest.raises(ValueError, match="lora:R"):
            AdapterSpec.parse(text)


def test_adapters_start_as_the_plain_model(plain, adapted):
    # lora_B is zero at the start: the adapted model computes exactly what the plain one does.
    for ours, theirs in zip(_outputs(adapted), _outputs(plain)):
        assert torch.equal(ours, theirs)


def test_only_adapters_and_heads_train_and_every_tower_linear_has_one(plain, adapted):
    # Every linear layer of the three towers but the tied output layer, named from the plain model.
    linears = [name for name, m in plain.named_modules() if isinstance(m, nn.Linear)
               and name.startswith(("clip.visual.", "clip.text.", "lm.seq2seq."))
               and not name.endswith("cls.predictions.decoder")]
    expected = {f"{name}.lora_{ab}.default.weight" for name in linears for ab in "AB"} | HEADS
    # Execute
    trainable = {name for name, p in adapted.named_parameters() if p.requires_grad}
    # Assert
    assert trainable == expected
    seq2seq = adapted.lm.seq2seq.decoder
    # The output layer still shares the token table (an adapter on it would untie them).
    assert seq2seq.cls.predictions.decoder.weight is seq2seq.bert.embeddings.word_embeddings.weight


@pytest.mark.parametrize("objective", sorted(TRAINED_PREFIX))
def test_an_adapted_site_sends_only_its_adapters_and_heads(plain, objective):
    model = ModelSource(adapter="lora:8").initial(seed=0)
    state = model.state_dict()
    # Execute
    keys = trained_keys(state, objective)
    # Assert: the objective's half only, adapters and heads only, and both kinds present
    assert keys and all(k.startswith(TRAINED_PREFIX[objective]) for k in keys)
    assert all(".lora_" in k or k.startswith(ADAPTER_HEADS) for k in keys)
    assert any(".lora_A." in k for k in keys) and any(k in HEADS for k in keys)
    assert len(keys) == len(set(keys))
    # Rank 8 on the tiny preset: a few percent of the plain model goes over the wire.
    sent = sum(state[k].numel() for k in keys)
    assert sent <= 0.05 * sum(p.numel() for p in plain.parameters())


def test_merging_folds_trained_adapters_into_a_plain_model(plain):
    source = ModelSource(adapter="lora:4")
    model = source.initial(seed=0).eval()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():  # what training does to the adapters: B moves away from zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
    # Execute
    merged = source.merged(model).eval()
    # Assert: the plain model's keys, and the adapted model's outputs
    assert merged.adapter is None and list(merged.state_dict()) == list(plain.state_dict())
    adapted_out, merged_out, plain_out = _outputs(model), _outputs(merged), _outputs(plain)
    for ours, theirs in zip(merged_out, adapted_out):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # The adapters did change the model, so the agreement above is not the plain model's.
    assert (adapted_out[0] - plain_out[0]).abs().max() > 1e-3
    assert (adapted_out[2] - plain_out[2]).abs().max() > 1e-3


def test_training_with_adapters_leaves_every_base_weight_untouched():
    model = ModelSource(adapter="lora:4").initial(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, _, _ = _inputs(model)
    cfg = TrainConfig(batch_size=2, lr=1e-2, lm_lr=1e-2)
    device = torch.device("cpu")
    # Execute: one step of each objective, with the optimiser a site builds (over all parameters)
    contrastive_epoch(model, [(images, TEXTS)], make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay), cfg,
                      device)
    lm_epoch(model, [(TEXTS, ["en", "zh"])], make_optimizer(model.parameters(), cfg.lm_lr, cfg.weight_decay), cfg,
             device)
    # Assert: bit for bit, every frozen tensor is what it was; the adapters and heads did move
    after = model.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert moved and all(".lora_" in k or k in HEADS for k in moved)
    assert any(k.startswith("clip.") and ".lora_B." in k for k in moved)
    assert any(k.startswith("lm.") and ".lora_B." in k for k in moved)


def test_an_adapter_checkpoint_round_trips_and_is_not_a_plain_start(plain, tmp_path):
    model = ModelSource(adapter="lora:4").initial(seed=3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)
    path = tmp_path / "adapted.safetensors"
    save_checkpoint(path, model)
    # Execute
    loaded, meta = load_checkpoint(path)
    # Assert: the adapters come back, with their weights
    assert meta["adapter"] == "lora:4" and loaded.adapter == AdapterSpec(4)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # A plain model cannot start from it: the merged export is what to use
    with pytest.raises(CheckpointError, match="model-merged.safetensors"):
        load_weights_into(ModelSource().empty(), path)
