"""Decoded images on disk, decoded once and shared: one memory-mapped file of model inputs per input size.

Every process that trains or evaluates on a dataset — ``m3fed sim``'s virtual sites, its server and
baselines, ``m3fed central``, a deployed site (``site check``, ``site start``, every round) — takes an
image's model input from here instead of decoding the file again. An entry is keyed by the file
(absolute path, size, modification time), the input size and the CT window, so a changed file is
decoded again under its new key and never served stale. Rows are appended, never rewritten, and
every reader maps the file copy-on-write: processes on one machine (virtual sites in their Ray
actors) share the pages of the OS page cache instead of each holding a copy. A store whose index
cannot be read or whose data file lacks rows the index names is rebuilt. Building decodes in
parallel (``workers``) under a file lock, so two processes never decode the same store at once.
The store holds the site's images: it stays on the disk next to its data and state; nothing here
is sent anywhere.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from client.data.dataset import Examples
from client.data.images import load_image, to_model_input
from client.data.sources.records import DataReport, Record
from client.errors import DataError

FORMAT = "m3fed.images/1"
SAVE_EVERY = 512  # decoded images between index writes: a killed build keeps what it had finished
log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (done, total) of the images being decoded


class ImageStore:
    def __init__(self, root: str | Path, image_size: int, ct_window: tuple[float, float] | None = None) -> None:
        self.root, self.size, self.ct_window = Path(root), image_size, ct_window
        stem = f"images-{image_size}" + ("" if ct_window is None else f"-ct{ct_window[0]:g}_{ct_window[1]:g}")
        self.index_file, self.data_file = self.root / f"{stem}.json", self.root / f"{stem}.u8"
        self.row_bytes = image_size * image_size
        self.hits = self.decoded = 0  # of the last ensure(): what a user is shown

    def key(self, path: str) -> str:
        try:
            stat = os.stat(path)
            state = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            state = "unreadable"
        return hashlib.sha256(json.dumps([os.path.abspath(path), state, self.size, self.ct_window]).encode()).hexdigest()

    def ensure(self, paths: list[str], *, workers: int = 1, progress: Progress | None = None) -> dict[str, int | list]:
        """Decode what the store lacks of ``paths`` and append it. Returns path -> its row, or
        [path, reason] for a file that cannot be decoded (remembered too: it is reported, not retried)."""
        keys = {p: self.key(p) for p in dict.fromkeys(paths)}
        index = self._index()
        if index is None or any(k not in index["entries"] for k in keys.values()):
            index = self._build(keys, workers, progress)
        else:
            self.hits, self.decoded = len(keys), 0
        return {p: index["entries"][k] for p, k in keys.items()}

    def images(self) -> torch.Tensor:
        """Every row, (N, 1, S, S) uint8, mapped copy-on-write from the data file (shared pages)."""
        index = self._index()
        rows = index["rows"] if index else 0
        if rows == 0:
            return torch.zeros(0, 1, self.size, self.size, dtype=torch.uint8)
        mapped = np.memmap(self.data_file, dtype=np.uint8, mode="c", shape=(rows, 1, self.size, self.size))
        return torch.from_numpy(mapped)

    def _index(self) -> dict | None:
        """The index, an empty one when there is none yet, None when it is damaged."""
        try:
            index = json.loads(self.index_file.read_text(encoding="utf-8"))
            if (index.get("format") != FORMAT or index.get("size") != self.size
                    or not isinstance(index.get("entries"), dict) or not isinstance(index.get("rows"), int)):
                return None
            if self.data_file.stat().st_size < index["rows"] * self.row_bytes:
                return None  # rows the index names are missing from the data file
            return index
        except FileNotFoundError:
            return None if self.data_file.exists() else {"format": FORMAT, "size": self.size, "rows": 0, "entries": {}}
        except (OSError, ValueError, AttributeError):
            return None

    def _build(self, keys: dict[str, str], workers: int, progress: Progress | None) -> dict:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # the images are the data's owner's alone
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self._index()  # another process may have built it meanwhile
            if index is None:
                log.warning("decoded-image store %s is damaged: rebuilding it", self.index_file)
                self.data_file.unlink(missing_ok=True)
                index = {"format": FORMAT, "size": self.size, "rows": 0, "entries": {}}
            missing = [p for p, k in keys.items() if k not in index["entries"]]
            self.hits, self.decoded = len(keys) - len(missing), len(missing)
            if missing:
                self._append(index, missing, keys, workers, progress)
        return index

    def _append(self, index: dict, missing: list[str], keys: dict[str, str], workers: int,
                progress: Progress | None) -> None:
        with open(self.data_file, "ab") as data:
            data.truncate(index["rows"] * self.row_bytes)  # the torn tail of a killed build
            for done, (path, pixels, failure) in enumerate(_decoded(missing, self.size, self.ct_window, workers), 1):
                if pixels is None:
                    index["entries"][keys[path]] = failure
                else:
                    data.write(pixels)
                    index["entries"][keys[path]] = index["rows"]
                    index["rows"] += 1
                if done % SAVE_EVERY == 0 or done == len(missing):
                    data.flush()
                    os.fsync(data.fileno())
                    self._save(index)
                if progress:
                    progress(done, len(missing))

    def _save(self, index: dict) -> None:
        tmp = self.index_file.with_name(f".{self.index_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index), encoding="utf-8")
        os.replace(tmp, self.index_file)  # only a complete index is ever read


def _decode_one(job: tuple[str, int, tuple[float, float] | None]) -> tuple[str, bytes | None, list | None]:
    path, size, ct_window = job
    try:
        pixels = to_model_input(load_image(path, ct_window=ct_window), size)
    except DataError as exc:
        return path, None, [str(exc.path), exc.reason]
    return path, np.round(pixels * 255).astype(np.uint8).tobytes(), None


def _decoded(paths: list[str], size: int, ct_window, workers: int) -> Iterator[tuple[str, bytes | None, list | None]]:
    jobs = [(p, size, ct_window) for p in paths]
    if workers <= 1 or len(paths) < 2:
        yield from map(_decode_one, jobs)
        return
    # fork: the workers only read files and resize with PIL and numpy (no torch), and start at once.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        yield from pool.map(_decode_one, jobs, chunksize=16)


def decode_stored(records: list[Record], image_size: int, report: DataReport, *, store: str | Path,
                  workers: int = 1, progress: Progress | None = None,
                  ct_window: tuple[float, float] | None = None, counts: dict | None = None) -> Examples:
    """``client.data.dataset.decode`` through the store at ``store``: the same records kept and skipped
    (each unusable file reported once, with its reason), images mapped from disk instead of decoded.
    ``counts`` (if given) gets how many image files were ``decoded`` now and how many were ``hits``."""
    images = ImageStore(store, image_size, ct_window)
    entries = images.ensure([r.image for r in records if r.image is not None], workers=workers, progress=progress)
    if counts is not None:
        counts.update(decoded=counts.get("decoded", 0) + images.decoded, hits=counts.get("hits", 0) + images.hits)
    kept, rows, reported = [], [], set()
    for record in records:
        entry = -1 if record.image is None else entries[record.image]
        if isinstance(entry, list):
            if record.image not in reported:
                reported.add(record.image)
                report.skip(entry[0], entry[1])
            continue
        kept.append(record)
        rows.append(entry)
    return Examples(kept, torch.tensor(rows, dtype=torch.long), images.images())
