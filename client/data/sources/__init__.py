"""A site's data sources: MIMIC-CXR as released, or a generic manifest.

``load_records(path)`` picks the reader from what is on disk and returns records plus a
``DataReport`` of everything that was skipped and why.
"""
from __future__ import annotations

from pathlib import Path

from client.data.sources.manifest import MANIFEST_NAMES, load_manifest
from client.data.sources.mimic import find_mimic_csv, load_mimic
from client.data.sources.records import DataReport, Record
from client.data.sources.scrubbing import scrub_records
from client.data.sources.selection import describe_left_out, select_records
from client.errors import DataError

__all__ = ["DataReport", "Record", "describe_left_out", "load_records", "select_records"]


def load_records(path: str | Path, *, languages: tuple[str, ...] | None = None, scrub: bool = True,
                 scrub_cache: str | Path | None = None) -> tuple[list[Record], DataReport]:
    """Read a MIMIC-CXR(-JPG) tree, a manifest file, or a folder holding a manifest.

    ``scrub``: identifiers are removed from every report before it is returned (a site's
    ``scrub: off`` turns it off, e.g. for data already de-identified by the hospital);
    ``scrub_cache``: a folder where results are kept between processes (``scrubbing``)."""
    records, report = _read(Path(path), languages)
    return (scrub_records(records, report, cache=scrub_cache) if scrub else records), report


def _read(path: Path, languages: tuple[str, ...] | None) -> tuple[list[Record], DataReport]:
    if not path.exists():
        raise DataError(path, "data path does not exist")
    if path.is_file():
        return load_manifest(path, languages=languages)
    if find_mimic_csv(path, "split") is not None:
        return load_mimic(path, languages=languages)
    for name in MANIFEST_NAMES:
        if (path / name).is_file():
            return load_manifest(path / name, languages=languages)
    raise DataError(path, "no mimic-cxr-2.0.0-split.csv[.gz] and no manifest.csv / manifest.jsonl found: "
                          "not a dataset m3fed can read")
