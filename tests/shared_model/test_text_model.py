"""A pretrained text tower from a local Hugging Face directory (--text-model): tokenizer, identity,
coverage, pretrained weights and checkpoints (shared_model/text_model.py)."""
from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from shared_model.checkpoint import ModelSource, load_checkpoint, save_checkpoint
from shared_model.errors import CheckpointError
from shared_model.objectives import contrastive_loss
from shared_model.text_model import check_coverage, tokenizer_sha256
from shared_model.tokenizer import load_tokenizer
from tests.shared_model.text_models import save_small_bert

HIDDEN = 64


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A BERT whose tokenizer covers English and Chinese (read-only: copy before changing it)."""
    return save_small_bert(tmp_path_factory.mktemp("bert") / "multilingual", hidden=HIDDEN)


@pytest.fixture(scope="module")
def english_bert(tmp_path_factory):
    return save_small_bert(tmp_path_factory.mktemp("bert") / "english", chinese=False, hidden=HIDDEN)


@pytest.fixture(scope="module")
def model(bert):
    return ModelSource(text_model=str(bert)).initial(seed=0)


@pytest.mark.parametrize("text, lang", [("The Endotracheal tube terminates 4 cm above the Carina.", "en"),
                                        ("左侧少量胸腔积液。心影增大。", "zh")])
def test_a_directorys_tokenizer_round_trips_english_and_chinese(bert, text, lang):
    tok = load_tokenizer(bert)
    # Execute
    ids, _ = tok.encode_target([text], [lang], 64)
    # Assert: the report starts with the added language token; BERT lower-cases
    assert ids[0, 0] == tok.lang_ids[lang]
    assert tok.decode(ids[0, 1:].tolist()) == text.lower()


def test_the_tokenizer_identity_is_its_files_wherever_they_are(bert, english_bert, tmp_path):
    tok = load_tokenizer(bert)
    copy = shutil.copytree(bert, tmp_path / "elsewhere")
    # Assert: two sites that copied one directory agree; any other vocabulary differs
    assert tok.sha256 == tokenizer_sha256(bert) == tokenizer_sha256(copy)
    assert tok.sha256 != load_tokenizer().sha256
    assert tok.sha256 != tokenizer_sha256(english_bert)


def test_an_english_only_tokenizer_is_refused_for_chinese_only(english_bert, bert):
    english = load_tokenizer(english_bert)
    with pytest.raises(CheckpointError, match="does not cover zh"):
        check_coverage(english, ["en", "zh"])
    check_coverage(english, ["en"])  # no error: it writes English
    check_coverage(load_tokenizer(bert), ["en", "zh"])


def test_the_text_tower_starts_from_the_directorys_pretrained_weights(bert, model):
    saved = load_file(str(bert / "model.safetensors"))
    # Assert: the tower's sizes are the directory's, and so are its weights (not a fresh draw)
    assert model.cfg.text_dim == HIDDEN and model.cfg.text_arch == "bert"
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.1.output.dense.weight"):
        assert torch.equal(model.clip.text.state_dict()[key], saved[key])
    assert model.tokenizer.vocab_size == saved["embeddings.word_embeddings.weight"].shape[0] + 2  # + [EN] [ZH]


def test_a_checkpoint_loads_back_with_its_tokenizer_and_is_refused_with_another(bert, model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, model)
    # Execute
    loaded, meta = load_checkpoint(path)
    # Assert: same weights, same directory recorded
    assert meta["text_model"] == str(bert) and meta["tokenizer_sha256"] == tokenizer_sha256(bert)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    # The shipped tokenizer's ids would scramble every embedding row: refused naming both hashes
    shipped = load_tokenizer()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, tokenizer=shipped)
    assert tokenizer_sha256(bert)[:12] in str(err.value) and shipped.sha256[:12] in str(err.value)


def test_a_missing_or_incomplete_text_model_directory_is_refused(bert, tmp_path):
    incomplete = shutil.copytree(bert, tmp_path / "no-config")
    (incomplete / "config.json").unlink()
    with pytest.raises(CheckpointError, match="not a directory"):
        ModelSource(text_model=str(tmp_path / "missing")).check()
    with pytest.raises(CheckpointError, match="no config.json"):
        ModelSource(text_model=str(incomplete)).check()
    with pytest.raises(CheckpointError, match="no such tokenizer file or --text-model directory"):
        load_tokenizer(tmp_path / "missing")


def test_a_contrastive_loss_reaches_the_pretrained_text_tower(model):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, model.cfg.image_size, model.cfg.image_size, generator=gen)
    model.zero_grad(set_to_none=True)
    # Execute
    contrastive_loss(model, images, ["no pleural effusion.", "右下肺见斑片状阴影。"]).backward()
    # Assert: every text-tower weight the loss uses gets a finite, non-zero gradient
    grads = [p.grad for p in model.clip.text.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.clip.text.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
