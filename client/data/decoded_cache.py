"""A deployed site's decoded images, kept on its own disk from one message to the next.

A SuperNode starts a new ClientApp process for every message, so without this each round would
read and resize every image of the site again (a full-size DICOM takes tens to hundreds of
milliseconds; a hospital holds tens of thousands). The site's images go through its decoded-image
store (``client.data.image_store``) under its ``state-dir`` (``decoded/``), which ``m3fed site
check`` and ``site start`` fill before the first round; a changed file is decoded again, a damaged
store rebuilt. The files hold the site's images: they stay at the site, on the disk that already
holds its data and state, and nothing here is sent anywhere.
"""
from __future__ import annotations

import logging
from pathlib import Path

from client.data.dataset import Examples, decode
from client.data.image_store import decode_stored
from client.data.sources import DataReport, Record

log = logging.getLogger(__name__)


def decode_cached(records: list[Record], image_size: int, report: DataReport, *, cache_dir: str | Path | None,
                  workers: int = 1, progress=None) -> Examples:
    """``decode`` through the store in ``cache_dir`` (None: decode in memory, as a process of its own)."""
    if cache_dir is None:
        return decode(records, image_size, report)
    try:
        return decode_stored(records, image_size, report, store=cache_dir, workers=workers, progress=progress)
    except OSError as exc:  # a store that cannot be written costs time, not the round
        log.warning("decoded images not stored in %s: %s", cache_dir, exc)
        return decode(records, image_size, report)
