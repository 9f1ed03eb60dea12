"""Records to tensors: images decoded once (uint8, model size), bad files skipped and counted."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from client.data.images import load_image, to_model_input
from client.data.sources.records import DataReport, Record
from client.errors import DataError


@dataclass
class Examples:
    """Kept records and, for those with an image, its row in ``images`` (-1 for text-only)."""

    records: list[Record]
    image_index: torch.Tensor
    images: torch.Tensor  # (M, 1, S, S) uint8: a quarter of float32's memory

    def subset(self, keep) -> "Examples":
        idx = [i for i, r in enumerate(self.records) if keep(r)]
        return Examples([self.records[i] for i in idx], self.image_index[idx], self.images)

    def image_float(self, rows: torch.Tensor) -> torch.Tensor:
        return self.images[rows].float() / 255.0


def decode(records: list[Record], image_size: int, report: DataReport,
           ct_window: tuple[float, float] | None = None) -> Examples:
    """Decode every distinct image once; records whose image fails are skipped with the reason."""
    index: dict[str, int] = {}
    failed: set[str] = set()
    arrays: list[np.ndarray] = []
    kept, rows = [], []
    for record in records:
        if record.image is not None and record.image not in index and record.image not in failed:
            try:
                pixels = to_model_input(load_image(record.image, ct_window=ct_window), image_size)
                index[record.image] = len(arrays)
                arrays.append(np.round(pixels * 255).astype(np.uint8))
            except DataError as exc:
                failed.add(record.image)
                report.skip(exc.path, exc.reason)
        if record.image in failed:
            continue
        kept.append(record)
        rows.append(index[record.image] if record.image is not None else -1)
    images = torch.from_numpy(np.stack(arrays)[:, None]) if arrays else torch.zeros(0, 1, image_size, image_size,
                                                                                       dtype=torch.uint8)
    return Examples(kept, torch.tensor(rows, dtype=torch.long), images)


def pair_batches(ex: Examples, batch_size: int, generator: torch.Generator
                 ) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """Shuffled (images, reports) batches over records that have an image."""
    with_image = torch.nonzero(ex.image_index >= 0).flatten()
    order = with_image[torch.randperm(len(with_image), generator=generator)]
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        yield ex.image_float(ex.image_index[chunk]), [ex.records[i].report for i in chunk.tolist()]


def text_batches(ex: Examples, batch_size: int, generator: torch.Generator
                 ) -> Iterator[tuple[list[str], list[str]]]:
    """Shuffled (reports, languages) batches over every record: text-only ones included."""
    order = torch.randperm(len(ex.records), generator=generator).tolist()
    # Batches of similar length (sorted within pools of 8 batches) cut padding, the main cost
    # of the vocabulary-wide softmax; the pool order stays random.
    pool = batch_size * 8
    chunks = []
    for start in range(0, len(order), pool):
        ranked = sorted(order[start:start + pool], key=lambda i: len(ex.records[i].report))
        chunks.extend(ranked[i:i + batch_size] for i in range(0, len(ranked), batch_size))
    for k in torch.randperm(len(chunks), generator=generator).tolist():
        chunk = [ex.records[i] for i in chunks[k]]
        yield [r.report for r in chunk], [r.language for r in chunk]
