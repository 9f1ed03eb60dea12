"""The shared tokenizer: coverage, round trips, and refusal of weights from another vocabulary."""
from __future__ import annotations

import json
import shutil

import pytest

from shared_model.build_tokenizer import gb2312_characters
from shared_model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from shared_model.config import get_preset
from shared_model.model import build_model
from shared_model.tokenizer import DEFAULT_TOKENIZER, TOKENIZER_V1_SHA256, SharedTokenizer, load_tokenizer


def test_every_gb2312_character_is_one_token():
    tok = load_tokenizer()
    hanzi = [c for c in gb2312_characters() if "\u4e00" <= c <= "\u9fff"]
    assert len(hanzi) > 6700
    text = "".join(hanzi)
    ids, _ = tok.encode_text([text], max_len=len(hanzi) + 2)
    pieces = ids[0, 1:-1].tolist()
    assert len(pieces) == len(hanzi) and tok.unk_id not in pieces


def test_english_clinical_text_round_trips_and_chinese_is_despaced():
    tok = load_tokenizer()
    for text, lang in (("the endotracheal tube terminates 4 cm above the carina.", "en"),
                       ("左侧少量胸腔积液。心影增大。", "zh")):
        ids, _ = tok.encode_target([text], [lang], 64)
        assert ids[0, 0] == tok.lang_ids[lang]
        assert tok.decode(ids[0, 1:].tolist()) == text


def test_shipped_file_is_the_pinned_version():
    # WordPiece training breaks frequency ties in no fixed order, so a rebuild is a new version:
    # the shipped file, pinned by hash, is the vocabulary.
    assert load_tokenizer().sha256 == TOKENIZER_V1_SHA256


def test_checkpoint_from_another_tokenizer_is_refused(tmp_path):
    cfg = get_preset("tiny")
    model = build_model(cfg)
    ckpt = tmp_path / "model.safetensors"
    save_checkpoint(ckpt, model)
    loaded, meta = load_checkpoint(ckpt)
    assert meta["tokenizer_sha256"] == load_tokenizer().sha256

    other_file = tmp_path / "tokenizer-other.json"
    data = json.loads(DEFAULT_TOKENIZER.read_text(encoding="utf-8"))
    data["normalizer"]["lowercase"] = False  # same size, different behaviour
    other_file.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match="refusing to load weights trained on another vocabulary"):
        load_checkpoint(ckpt, tokenizer=SharedTokenizer(other_file))


def test_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "x.safetensors"
    bogus.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(bogus)
    shutil.rmtree(tmp_path)
