"""The final model at every site: the end of a deployed run, and a simulation's virtual sites.

A deployed run ends with two Message-API queries to every connected node, after results.json:

1. ``query.final_model``: the weight file to use (``model-merged.safetensors`` with adapters, else
   ``model.safetensors``) as its bytes in one uint8 array (Flower chunks it, and the SuperLink stores
   a broadcast once), with its sha256. The site keeps it only if what it received and what it wrote
   both hash to that (``client.app.final_model``), answers with the sha256 of the file it holds and,
   under a privacy policy, its privacy statement: a text-only site is never asked to evaluate, so
   this is where its δ reaches the card.
2. ``query.model_card``: ``MODEL_CARD.md`` / ``model_card.json``, written between the two so they
   hold every site's privacy line; a site keeps them only beside the model they name.

``results.json`` records each site's answer under ``final_model`` (a site gone, refusing or holding
another hash is recorded, never fatal). A simulation sends nothing: its virtual sites live inside the
run folder that already holds the model and the card, so each gets only ``sites/<site>/model/model.sha256``
naming the run's file (bytes, not copies: a 1,000-site run would otherwise hold 1,000 models).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict

from client.app.client_app import PRIVACY_STATEMENT
from client.app.final_model import (CARD_ACTION, CARD_JSON, CARD_MD, HASH, KEPT_RECORD, MODEL_ACTION, MODEL_RECORD,
                                    write_private)
from server.model_card import MERGED, WEIGHTS, read_results, write_model_card
from shared_model.results import update_results
from server.site_evaluation import site_statement


def final_file(run_dir: Path) -> Path | None:
    """The file a site should use: the merged model when the run trained adapters."""
    for name in (MERGED, WEIGHTS):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def deliver_final_model(grid, strategy, *, run_dir: Path, sites: list[str], timeout: float) -> dict:
    """Send the final model, then the card (written here), to every connected node; returns results'
    ``final_model``. ``strategy`` names the nodes (``server.strategy.ObjectiveRounds``: its ``node_names``
    and its readers of a reply's site name and error); ``sites``: every site the run knows by name."""
    started = time.perf_counter()
    path = final_file(run_dir)
    if path is None:
        write_model_card(run_dir)
        return _record(run_dir, {"file": None, "sites": {}, "status": "no model file to deliver"})
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    nodes = list(grid.get_node_ids())
    content = RecordDict({MODEL_RECORD: ArrayRecord({"file": Array(np.frombuffer(data, dtype=np.uint8))}),
                          "config": ConfigRecord({"sha256": digest, "file": path.name, "bytes": len(data)})})
    del data
    answers = _exchange(grid, strategy, nodes, content, f"query.{MODEL_ACTION}", timeout)
    known = read_results(run_dir).get("privacy") or {}  # the statements the sites sent with their evaluations
    per_site, statements = {}, {}
    for name, (node, reply) in answers.items():
        per_site[name] = {"model": _kept(reply, digest)}
        statement = None if isinstance(reply, str) else site_statement(
            reply.content.config_records.get(PRIVACY_STATEMENT))
        if statement is not None and name not in known:
            statements[name] = {**statement, "reported_in": "final model delivery"}
    for name in sites:  # known from the rounds, not connected now: the card still goes out without them
        per_site.setdefault(name, {"model": "not connected when the run ended"})
    if statements:
        update_results(run_dir, privacy={**known, **statements})
    write_model_card(run_dir)
    holders = {node: name for name, (node, _) in answers.items() if per_site[name]["model"] == "kept"}
    card = RecordDict({"config": ConfigRecord({"card-md": (run_dir / CARD_MD).read_text(encoding="utf-8"),
                                               "card-json": (run_dir / CARD_JSON).read_text(encoding="utf-8")})})
    for name, (_, reply) in _exchange(grid, strategy, list(holders), card, f"query.{CARD_ACTION}", timeout).items():
        per_site[name]["card"] = _kept(reply, digest)
    return _record(run_dir, {"file": path.name, "sha256": digest, "bytes": path.stat().st_size,
                             "sites": dict(sorted(per_site.items())), "seconds": time.perf_counter() - started})


def _exchange(grid, strategy, nodes: list[int], content: RecordDict, message_type: str, timeout: float
              ) -> dict[str, tuple[int, object]]:
    """site name -> (node, its reply, or why there is none) for one query sent to ``nodes``."""
    if not nodes:
        return {}
    messages = [Message(content, dst_node_id=node, message_type=message_type) for node in nodes]
    answers: dict[str, tuple[int, object]] = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node = reply.metadata.src_node_id
        if reply.has_error():
            name, reason = strategy._error_site(reply)
            answers[name] = (node, f"error: {reason}")
        else:
            answers[strategy._site_name(-1, reply)] = (node, reply)
    answered = {node for node, _ in answers.values()}
    for node in nodes:
        if node not in answered:
            answers[strategy.node_names.get(node, f"node-{node}")] = (node, "no reply within the round timeout")
    return answers


def _kept(reply, digest: str) -> str:
    """'kept' when the site states the sha256 sent; otherwise why not."""
    if isinstance(reply, str):
        return reply
    stated = dict(reply.content.config_records.get(KEPT_RECORD) or {}).get("sha256")
    return "kept" if stated == digest else f"not kept: the site states sha256 {str(stated)[:12]}…"


def _record(run_dir: Path, entry: dict) -> dict:
    update_results(run_dir, final_model=entry)
    return entry


def note_virtual_sites(run_dir: Path, sites: list[str]) -> None:
    """A simulation: ``sites/<site>/model/model.sha256`` names the run's final file (``sha256sum -c`` from
    that folder checks it), laid out as a deployed site's ``model/`` and a few bytes each."""
    path = final_file(run_dir)
    if path is None:
        return
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    for name in sites:
        folder = run_dir / "sites" / name / "model"
        folder.mkdir(parents=True, exist_ok=True)
        write_private(folder / HASH, f"{digest}  ../../../{path.name}\n".encode())
