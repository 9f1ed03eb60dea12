"""The decoded-image store as the commands use it: where it is, a writable check, a progress bar.

``m3fed sim`` and ``m3fed central`` keep one store for every dataset of a user
(``$M3FED_HOME/decoded`` unless ``--image-cache DIR``; entries are keyed by absolute path, so
datasets never collide); a deployed site keeps its own under its state directory.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from client.errors import DataError


def default_store() -> Path:
    from shared_model.app import m3fed_home

    return m3fed_home() / "decoded"


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def check_store(path: str | Path, flag: str = "--image-cache") -> Path:
    """The store's folder, created and writable, or a DataError naming the flag and why."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise DataError(path, f"{flag}: cannot write the decoded-image store there ({exc.strerror or exc})") from None
    return path


def decode_with_progress(records, image_size: int, report, *, store: str | Path, workers: int, console=None,
                         counts: dict | None = None, what: str = "images"):
    """``decode_stored`` with a rich progress bar while new images are decoded; ``counts`` adds up how
    many image files were decoded and how many came from the store (``store_line``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from client.data.image_store import decode_stored

    with Progress(TextColumn(f"decoding {what}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, disable=console is None or console.quiet, transient=True) as bar:
        task = bar.add_task("decode", total=None)
        return decode_stored(records, image_size, report, store=store, workers=workers, counts=counts,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))


def store_line(counts: dict) -> str:
    return (f"images: {counts.get('decoded', 0)} decoded, {counts.get('hits', 0)} from the decoded-image store "
            f"{counts.get('store', '')}")
