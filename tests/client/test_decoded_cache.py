"""A deployed site decodes its images once per state of its data, not once per message."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch

import client.data.image_store as store
from client.data.decoded_cache import decode_cached
from client.data.sources import load_records


@pytest.fixture
def site(small_mimic, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_mimic, data)
    return data


def _decode(data, cache_dir):
    records, report = load_records(data)
    examples = decode_cached([r for r in records if r.split == "train"], 32, report, cache_dir=cache_dir)
    return examples, report


def _same(a, b) -> bool:  # labels hold NaN (not mentioned), which never equals itself
    return json.dumps([dataclasses.asdict(r) for r in a]) == json.dumps([dataclasses.asdict(r) for r in b])


def _decodes(monkeypatch) -> list[str]:
    """The image files decoded from here on."""
    calls = []
    real = store._decode_one

    def counting(job):
        calls.append(job[0])
        return real(job)
    monkeypatch.setattr(store, "_decode_one", counting)
    return calls


def test_the_second_process_reads_what_the_first_decoded(site, tmp_path, monkeypatch):
    first, _ = _decode(site, tmp_path / "decoded")
    calls = _decodes(monkeypatch)
    again, _ = _decode(site, tmp_path / "decoded")
    assert calls == []  # nothing decoded the second time
    assert _same(again.records, first.records)
    assert torch.equal(again.images, first.images) and torch.equal(again.image_index, first.image_index)
    names = sorted(p.name for p in (tmp_path / "decoded").iterdir())
    assert names == [".lock", "images-32.json", "images-32.u8"]  # the index, the rows


def test_a_changed_image_or_a_broken_cache_means_decoding_afresh(site, tmp_path, monkeypatch):
    cache_dir = tmp_path / "decoded"
    first, _ = _decode(site, cache_dir)
    calls = _decodes(monkeypatch)
    image = next(r.image for r in first.records if r.image)
    stat = os.stat(image)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file was replaced
    again, _ = _decode(site, cache_dir)
    assert calls == [image]  # that file only, under its new key
    assert torch.equal(again.images[again.image_index], first.images[first.image_index])
    decoded = len(first.images)
    (cache_dir / "images-32.json").write_text("{not json", encoding="utf-8")
    again, _ = _decode(site, cache_dir)
    assert len(calls) == 1 + decoded and _same(again.records, first.records)  # rebuilt
    (cache_dir / "images-32.u8").write_bytes(b"\x00" * 64)  # rows the index names are gone
    again, _ = _decode(site, cache_dir)
    assert len(calls) == 1 + 2 * decoded and torch.equal(again.images, first.images)


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
    assert calls == [] and not any(tmp_path.rglob("*.u8"))  # decoded in memory (dataset.decode), not stored


def test_a_store_that_cannot_be_written_costs_time_not_the_round(site, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    examples, report = _decode(site, blocked / "decoded")
    assert len(examples.records) > 0 and "decoded images not stored" in caplog.text
