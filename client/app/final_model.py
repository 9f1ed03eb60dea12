"""The run's final model at the site: received at the end of a deployed run, checked, kept at home.

``<state-dir>/model/`` (the site daemon's ``state_dir``; a virtual site's ``RUNDIR/sites/<site>/model``)
holds the model of the latest run that finished with this site connected:

- ``model.safetensors``: the model the run selected (with adapters: folded in), byte for byte the
  server's file; loads with ``shared_model.checkpoint.load_checkpoint`` and this site's tokenizer;
- ``model.sha256``: its sha256 in ``sha256sum -c`` format;
- ``MODEL_CARD.md`` / ``model_card.json``: the run's model card (``server.model_card``);
- ``received.json``: which run, which server file, when.

The server sends two queries (``server.final_model``): the weight file's bytes with their sha256
(kept only if the bytes received and the file written both hash to it, and the file is an m3fed
checkpoint for this site's tokenizer), then the card (kept only if it names the model kept). Each
file is written to a temporary file in the same folder, synced and renamed over the old one, so a
reader sees a whole old or a whole new file; the model goes first and ``model.sha256`` after it,
so ``sha256sum -c model.sha256`` fails only while a delivery is under way.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from pathlib import Path

from flwr.app import RecordDict

# Message-API actions (``query.<action>``) and record names shared with server.final_model.
MODEL_ACTION, CARD_ACTION = "final_model", "model_card"
MODEL_RECORD, KEPT_RECORD = "final-model", "final-model-kept"
WEIGHTS, HASH, RECEIVED = "model.safetensors", "model.sha256", "received.json"
CARD_MD, CARD_JSON = "MODEL_CARD.md", "model_card.json"


class ReceiveError(Exception):
    """What the site received is not what the server said it sent, or not a model this site can use."""


def model_dir(context) -> Path:
    """``<state-dir>/model`` at a deployed site; next to a virtual site's manifest in a simulation."""
    if "state-dir" in context.node_config:
        return Path(str(context.node_config["state-dir"])) / "model"
    from client.app.node import data_path_of

    return Path(data_path_of(context)).parent / "model"


def keep_model(content: RecordDict, folder: Path, *, tokenizer_sha256: str, run: dict) -> dict:
    """Check and keep the model in ``content``; returns what the site states back (sha256, path, bytes).

    ReceiveError when the bytes do not hash to the sha256 the server stated, or the file is not an
    m3fed checkpoint made with this site's tokenizer; nothing is replaced then.
    """
    from shared_model.checkpoint import read_metadata
    from shared_model.errors import CheckpointError

    config = content["config"]
    stated, name = str(config["sha256"]), str(config.get("file", WEIGHTS))
    data = memoryview(content[MODEL_RECORD]["file"].numpy())
    received = hashlib.sha256(data).hexdigest()
    if received != stated:
        raise ReceiveError(f"the model received hashes to sha256 {received[:12]}…, the server stated "
                           f"{stated[:12]}…: not kept")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = _temp_copy(folder, WEIGHTS, data)
    try:
        on_disk = _sha256(tmp)  # what was written, read back: the hash the site states is its file's
        if on_disk != stated:
            raise ReceiveError(f"the model written to {folder} hashes to sha256 {on_disk[:12]}…, not {stated[:12]}…")
        try:
            meta = read_metadata(tmp)
        except CheckpointError as exc:
            raise ReceiveError(f"not an m3fed checkpoint: {exc}") from None
        if meta.get("tokenizer_sha256") != tokenizer_sha256:
            raise ReceiveError(f"the model was made with tokenizer sha256 {str(meta.get('tokenizer_sha256'))[:12]}…, "
                               f"this site's is {tokenizer_sha256[:12]}…: not kept")
        os.replace(tmp, folder / WEIGHTS)
    finally:
        tmp.unlink(missing_ok=True)
    write_private(folder / HASH, f"{stated}  {WEIGHTS}\n".encode())
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    write_private(folder / RECEIVED, json.dumps({**run, "server_file": name, "sha256": stated, "bytes": len(data),
                                                 "received": when}, indent=2).encode())
    return {"sha256": stated, "path": str(folder / WEIGHTS), "bytes": len(data)}


def keep_card(content: RecordDict, folder: Path) -> dict:
    """Keep the model card beside the model it names; ReceiveError if this site holds another model (or none)."""
    config = content["config"]
    text, doc = str(config["card-md"]), str(config["card-json"])
    try:
        named = json.loads(doc)["model"]["use_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ReceiveError(f"the model card is not an m3fed model card ({type(exc).__name__})") from None
    held = held_sha256(folder)
    if held is None or held != named:
        raise ReceiveError(f"the card is for the model sha256 {str(named)[:12]}…, this site holds "
                           f"{'no model' if held is None else f'sha256 {held[:12]}…'}: not kept")
    write_private(folder / CARD_JSON, doc.encode())
    write_private(folder / CARD_MD, text.encode())
    return {"sha256": held, "path": str(folder / CARD_MD)}


def held_sha256(folder: Path) -> str | None:
    """The sha256 ``model.sha256`` states for the model kept here; None when there is none."""
    path = folder / HASH
    if not path.is_file():
        return None
    parts = path.read_text(encoding="utf-8").split()
    return parts[0] if parts else None


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` in one rename, mode 0600 (the site's state folder is its own)."""
    tmp = _temp_copy(path.parent, path.name, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _temp_copy(folder: Path, name: str, data) -> Path:
    """``data`` in a new 0600 file beside ``folder/name``, synced to disk (mkstemp: never another's file)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:  # write() loops over partial writes (a model can pass 2 GB)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(tmp)


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
