"""A deployed site's decoded images, kept on its own disk from one message to the next.

A SuperNode starts a new ClientApp process for every message, so without this each round would
read and resize every image of the site again (a full-size DICOM takes tens to hundreds of
milliseconds; a hospital holds tens of thousands). The decoded split is stored under the site's
``state-dir`` (``decoded/``) and reused while the records and every image file (size and
modification time) are unchanged; any change, a new preset size or an unreadable cache means
decoding afresh. The files hold the site's images and reports: they stay at the site, on the
disk that already holds its data and state, and nothing here is sent anywhere.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from client.data.dataset import Examples, decode
from client.data.sources import DataReport, Record

FORMAT = "m3fed.decoded/1"
log = logging.getLogger(__name__)


def fingerprint(records: list[Record], image_size: int) -> str:
    """Changes when any record, any image file's size or modification time, or the model input size does."""
    digest = hashlib.sha256(json.dumps([FORMAT, image_size]).encode())
    for record in records:
        digest.update(json.dumps(dataclasses.asdict(record), sort_keys=True).encode())
        if record.image is not None:
            try:
                stat = os.stat(record.image)
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(b"unreadable")
    return digest.hexdigest()


def decode_cached(records: list[Record], image_size: int, report: DataReport, *, cache_dir: Path | None,
                  name: str) -> Examples:
    """``decode`` once per state of the data; ``name`` tells the site's splits apart in ``cache_dir``."""
    if cache_dir is None:
        return decode(records, image_size, report)
    key = fingerprint(records, image_size)
    stem = f"{name}-{image_size}-"
    files = (cache_dir / f"{stem}{key[:32]}.safetensors", cache_dir / f"{stem}{key[:32]}.json")
    cached = _read(*files, key, report)
    if cached is not None:
        return cached
    before = len(report.skipped)
    examples = decode(records, image_size, report)
    try:
        _write(*files, key, examples, report.skipped[before:])
        for old in cache_dir.glob(stem + "*"):  # earlier states of the same split and size
            if old not in files:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a cache that cannot be written costs time, not the round
        log.warning("decoded images not cached in %s: %s", cache_dir, exc)
    return examples


def _read(tensors_file: Path, meta_file: Path, key: str, report: DataReport) -> Examples | None:
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("key") != key:
            return None
        tensors = load_file(str(tensors_file))
        records = [Record(**r) for r in meta["records"]]
        if tensors["image_index"].shape[0] != len(records):
            return None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError):
        return None  # missing, partly written or foreign: decode again
    for path, reason in meta["skipped"]:  # what decoding skipped is reported as if it had just run
        report.skip(path, reason)
    return Examples(records, tensors["image_index"], tensors["images"])


def _write(tensors_file: Path, meta_file: Path, key: str, examples: Examples, skipped: list) -> None:
    tensors_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = tensors_file.with_name(f".{os.getpid()}.tmp")
    save_file({"images": examples.images.contiguous(), "image_index": examples.image_index.to(torch.long)}, str(tmp))
    os.replace(tmp, tensors_file)
    meta = {"format": FORMAT, "key": key, "records": [dataclasses.asdict(r) for r in examples.records],
            "skipped": skipped}
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, meta_file)  # last, and it names the key: only a complete pair is ever read
