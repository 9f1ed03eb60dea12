"""The decoded-image store (client/data/image_store.py): decoded once, in parallel, mapped from disk."""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from client.data.dataset import decode
from client.data.image_store import ImageStore, decode_stored
from client.data.sources import load_records


@pytest.fixture
def data(small_mimic, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(small_mimic, copy)
    return copy


def _rows(examples) -> torch.Tensor:
    return examples.images[examples.image_index[examples.image_index >= 0]]


def test_a_parallel_build_gives_what_decoding_in_memory_gives_and_a_second_call_decodes_nothing(data, tmp_path):
    records, report = load_records(data)
    broken = next(r.image for r in records if r.image)
    with open(broken, "wb") as f:
        f.write(b"not an image")
    plain = decode(records, 32, report)
    seen = []
    records, stored_report = load_records(data)
    stored = decode_stored(records, 32, stored_report, store=tmp_path / "store", workers=2,
                           progress=lambda done, total: seen.append((done, total)))
    assert [dataclasses.asdict(r)["image"] for r in stored.records] == [r.image for r in plain.records]
    assert torch.equal(_rows(stored), _rows(plain)) and torch.equal(stored.image_index >= 0, plain.image_index >= 0)
    assert stored_report.skipped == report.skipped and [p for p, _ in report.skipped] == [broken]
    total = len({r.image for r in records if r.image})
    assert seen[-1] == (total, total) and len(seen) == total
    store = ImageStore(tmp_path / "store", 32)
    entries = store.ensure([r.image for r in records if r.image])
    assert (store.hits, store.decoded) == (total, 0) and entries[broken] == [broken, report.skipped[0][1]]


def test_readers_map_the_file_instead_of_holding_a_copy(data, tmp_path):
    records, report = load_records(data)
    examples = decode_stored(records, 32, report, store=tmp_path / "store")
    data_file = str((tmp_path / "store" / "images-32.u8").resolve())
    address = examples.images.data_ptr()
    mapped = []
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            if line.rstrip().endswith(data_file):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                mapped.append(start <= address < end)
    assert any(mapped)  # the tensor's memory is the file's mapping (pages the OS shares between processes)
    examples.images[0] += 1  # copy-on-write: a process that writes changes its own pages, never the file
    again = decode_stored(records, 32, load_records(data)[1], store=tmp_path / "store")
    assert not torch.equal(again.images[0], examples.images[0])


def test_each_input_size_and_ct_window_has_its_own_rows_and_a_killed_build_keeps_what_it_finished(data, tmp_path):
    records, report = load_records(data)
    paths = list(dict.fromkeys(r.image for r in records if r.image))  # one per image file
    small, large = ImageStore(tmp_path, 16), ImageStore(tmp_path, 24)
    windowed = ImageStore(tmp_path, 16, ct_window=(40.0, 400.0))
    for store in (small, large, windowed):
        store.ensure(paths[:5])
    assert small.images().shape[1:] == (1, 16, 16) and large.images().shape[1:] == (1, 24, 24)
    assert small.index_file != windowed.index_file
    # A build killed after its index was written, with part of a row appended: the torn tail is cut.
    with open(small.data_file, "ab") as torn:
        torn.write(b"\x01" * 100)
    small.ensure(paths[:6])
    assert (small.hits, small.decoded) == (5, 1) and small.data_file.stat().st_size == 6 * 16 * 16
    index = json.loads(small.index_file.read_text())
    assert index["rows"] == 6 and sorted(v for v in index["entries"].values() if isinstance(v, int)) == list(range(6))
