"""A site takes in the run's final model: kept only when what it received and wrote hash to what the
server stated and it fits the site's tokenizer; the card only beside the model it names; no half file."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from client.app.final_model import (CARD_ACTION, KEPT_RECORD, MODEL_ACTION, MODEL_RECORD, ReceiveError, keep_card,
                                    keep_model)
from shared_model.run_config import RunConfig
from tests.server.run_records import checkpoint, default_tokenizer_sha256

TOKENIZER = "t" * 64


def _content(data: bytes, *, stated: str | None = None) -> RecordDict:
    return RecordDict({MODEL_RECORD: ArrayRecord({"file": Array(np.frombuffer(data, dtype=np.uint8))}),
                       "config": ConfigRecord({"sha256": stated or hashlib.sha256(data).hexdigest(),
                                               "file": "model.safetensors", "bytes": len(data)})})


def _card(sha256: str) -> RecordDict:
    return RecordDict({"config": ConfigRecord({"card-md": "# Model card\n",
                                               "card-json": json.dumps({"model": {"use_sha256": sha256}})})})


def test_the_model_is_kept_byte_for_byte_with_its_hash_and_the_card_beside_it(tmp_path):
    # Prepare
    data = checkpoint(tmp_path / "server.safetensors", tokenizer_sha256=TOKENIZER)
    folder = tmp_path / "state" / "model"
    digest = hashlib.sha256(data).hexdigest()
    # Execute
    kept = keep_model(_content(data), folder, tokenizer_sha256=TOKENIZER, run={"run_id": 7, "run_dir": "/runs/a"})
    card = keep_card(_card(digest), folder)
    # Assert: the server's bytes, a sha256sum-style hash file, the card, and nothing else left behind
    assert (folder / "model.safetensors").read_bytes() == data
    assert (folder / "model.sha256").read_text() == f"{digest}  model.safetensors\n"
    assert kept == {"sha256": digest, "path": str(folder / "model.safetensors"), "bytes": len(data)}
    assert card["sha256"] == digest and (folder / "MODEL_CARD.md").read_text() == "# Model card\n"
    received = json.loads((folder / "received.json").read_text())
    assert received["run_id"] == 7 and received["sha256"] == digest and received["server_file"] == "model.safetensors"
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "model.safetensors", "model.sha256",
                                                         "model_card.json", "received.json"]
    assert all(p.stat().st_mode & 0o077 == 0 for p in folder.iterdir())  # the site's own files only


@pytest.mark.parametrize("case", ["bytes changed on the way", "another tokenizer", "not a checkpoint"])
def test_a_bad_delivery_is_refused_and_the_model_kept_before_stays(tmp_path, case):
    # Prepare: a model already kept from an earlier run
    folder = tmp_path / "model"
    old = checkpoint(tmp_path / "old.safetensors", tokenizer_sha256=TOKENIZER, seed=1)
    keep_model(_content(old), folder, tokenizer_sha256=TOKENIZER, run={})
    new = checkpoint(tmp_path / "new.safetensors", tokenizer_sha256=TOKENIZER, seed=2)
    if case == "bytes changed on the way":
        content = _content(new[:-1] + bytes([new[-1] ^ 1]), stated=hashlib.sha256(new).hexdigest())
        message = "the server stated"
    elif case == "another tokenizer":
        content = _content(checkpoint(tmp_path / "other.safetensors", tokenizer_sha256="o" * 64))
        message = "tokenizer"
    else:
        content = _content(b"not a safetensors file at all")
        message = "not an m3fed checkpoint"
    # Execute
    with pytest.raises(ReceiveError, match=message):
        keep_model(content, folder, tokenizer_sha256=TOKENIZER, run={})
    # Assert: the earlier model and its hash are untouched, no temporary file is left
    assert (folder / "model.safetensors").read_bytes() == old
    assert (folder / "model.sha256").read_text().split()[0] == hashlib.sha256(old).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "model.sha256", "received.json"]


def test_a_card_for_another_model_or_no_model_is_not_kept(tmp_path):
    folder = tmp_path / "model"
    with pytest.raises(ReceiveError, match="holds no model"):
        keep_card(_card("a" * 64), folder)
    data = checkpoint(tmp_path / "m.safetensors", tokenizer_sha256=TOKENIZER)
    keep_model(_content(data), folder, tokenizer_sha256=TOKENIZER, run={})
    with pytest.raises(ReceiveError, match="the card is for the model sha256 aaaaaaaaaaaa"):
        keep_card(_card("a" * 64), folder)
    assert not (folder / "MODEL_CARD.md").exists()


def test_the_client_app_keeps_the_model_in_the_state_dir_and_names_itself_or_its_refusal(tmp_path):
    from client.app.client_app import app

    # Prepare: a deployed site (its node config), the shipped tokenizer
    data = checkpoint(tmp_path / "m.safetensors", tokenizer_sha256=default_tokenizer_sha256())
    context = Context(run_id=3, node_id=1, state=RecordDict(),
                      node_config={"state-dir": str(tmp_path / "state"), "site-name": "hospital-a",
                                   "data-path": str(tmp_path / "data" / "manifest.jsonl")},
                      run_config=RunConfig(run_dir="/srv/runs/r1").to_run_config())
    # Execute
    reply = app(Message(_content(data), dst_node_id=1, message_type=f"query.{MODEL_ACTION}"), context)
    card = app(Message(_card(hashlib.sha256(data).hexdigest()), dst_node_id=1, message_type=f"query.{CARD_ACTION}"),
               context)
    refused = app(Message(_content(data, stated="0" * 64), dst_node_id=1, message_type=f"query.{MODEL_ACTION}"),
                  context)
    # Assert
    assert reply.content[KEPT_RECORD]["sha256"] == hashlib.sha256(data).hexdigest()
    assert reply.content["site"]["name"] == "hospital-a" and "privacy-statement" not in reply.content.config_records
    assert (tmp_path / "state" / "model" / "model.safetensors").read_bytes() == data
    assert json.loads((tmp_path / "state" / "model" / "received.json").read_text())["run_dir"] == "/srv/runs/r1"
    assert card.content[KEPT_RECORD]["sha256"] == hashlib.sha256(data).hexdigest()
    assert refused.has_error() and refused.error.reason.startswith("[site hospital-a] ReceiveError: ")
