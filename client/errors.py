"""The one error type every data source raises for a user's bad input."""
from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A record or file that cannot be used, with the path and a plain reason.

    Data sources raise this instead of letting library exceptions escape, so the CLI can
    print ``path: reason`` and training can skip the record and count it.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
