"""Errors the ``m3fed`` command turns into one ``error:`` line; importable without torch."""
from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint that cannot be used here, with the reason."""
