"""A deployed site decodes its images once per state of its data, not once per message."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch

import client.data.decoded_cache as cache
from client.data.decoded_cache import decode_cached
from client.data.sources import load_records


@pytest.fixture
def site(small_mimic, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_mimic, data)
    return data


def _decode(data, cache_dir):
    records, report = load_records(data)
    examples = decode_cached([r for r in records if r.split == "train"], 32, report, cache_dir=cache_dir,
                             name="train")
    return examples, report


def _same(a, b) -> bool:  # labels hold NaN (not mentioned), which never equals itself
    return json.dumps([dataclasses.asdict(r) for r in a]) == json.dumps([dataclasses.asdict(r) for r in b])


def _decodes(monkeypatch) -> list[int]:
    calls = []
    real = cache.decode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(cache, "decode", counting)
    return calls


def test_the_second_process_reads_what_the_first_decoded(site, tmp_path, monkeypatch):
    first, _ = _decode(site, tmp_path / "decoded")
    calls = _decodes(monkeypatch)
    again, _ = _decode(site, tmp_path / "decoded")
    assert calls == []  # nothing decoded the second time
    assert _same(again.records, first.records)
    assert torch.equal(again.images, first.images) and torch.equal(again.image_index, first.image_index)
    assert len(list((tmp_path / "decoded").iterdir())) == 2  # one tensors file, one record file


def test_a_changed_image_or_a_broken_cache_means_decoding_afresh(site, tmp_path, monkeypatch):
    cache_dir = tmp_path / "decoded"
    first, _ = _decode(site, cache_dir)
    calls = _decodes(monkeypatch)
    image = next(r.image for r in first.records if r.image)
    stat = os.stat(image)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was replaced
    _decode(site, cache_dir)
    assert calls == [1]
    assert len(list(cache_dir.iterdir())) == 2  # the stale pair was removed
    next(cache_dir.glob("*.json")).write_text("{not json", encoding="utf-8")
    again, _ = _decode(site, cache_dir)
    assert calls == [1, 1] and _same(again.records, first.records)
    next(cache_dir.glob("*.safetensors")).write_bytes(b"\x00" * 64)
    again, _ = _decode(site, cache_dir)
    assert calls == [1, 1, 1] and torch.equal(again.images, first.images)


def test_an_image_that_failed_to_decode_is_reported_again_from_the_cache(site, tmp_path):
    records, _ = load_records(site)
    broken = next(r.image for r in records if r.image and r.split == "train")
    with open(broken, "wb") as f:
        f.write(b"not an image")
    first, report = _decode(site, tmp_path / "decoded")
    again, report_again = _decode(site, tmp_path / "decoded")
    assert [p for p, _ in report.skipped] == [broken] and report_again.skipped == report.skipped
    assert _same(again.records, first.records) and all(r.image != broken for r in again.records)


def test_without_a_cache_dir_nothing_is_written(site, tmp_path, monkeypatch):
    calls = _decodes(monkeypatch)
    _decode(site, None)
    _decode(site, None)
    assert calls == [1, 1]
