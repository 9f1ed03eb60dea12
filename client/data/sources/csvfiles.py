"""Reading the CSV files data sources depend on, with errors that name the file and column."""
from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from client.errors import DataError


def read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    """All rows of a ``.csv`` or ``.csv.gz``; refuses a file that lacks a required column."""
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(path, f"cannot read CSV: {exc}") from None
    except UnicodeDecodeError:
        raise DataError(path, "CSV is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(path, f"missing CSV column(s) {', '.join(missing)} (found: {', '.join(columns) or 'none'})")
    return [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
