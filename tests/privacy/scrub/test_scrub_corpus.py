"""The scrubber's labelled corpus is labelled right, and its scoring can fail (bench/scrub_corpus.py, scrub_bench.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def corpus():
    return _load("scrub_corpus").build_corpus(60, seed=3)


def test_planted_offsets_and_labels(corpus):
    # Assert
    assert {d["language"] for d in corpus} == {"en", "zh"}
    categories = set()
    for doc in corpus:
        text = doc["text"]
        for p in doc["planted"]:
            assert text[p["start"]:p["end"]] == p["value"]
            categories.add(p["category"])
        for n in doc["negatives"]:
            assert text[n["start"]:n["end"]] == n["value"]
        for a, b in doc["clinical"]:
            assert text[a:b].strip() and not any(p["start"] < b and a < p["end"] for p in doc["planted"])
        for a, b in doc["placeholders"]:
            assert text[a:b] in ("___", "XXXX")
    assert {"name", "date", "id", "phone", "email", "url", "address", "postcode", "age", "cn_id",
            "hospital"} <= categories


def test_same_seed_same_corpus():
    build = _load("scrub_corpus").build_corpus
    assert build(5, seed=1) == build(5, seed=1)


def test_scoring_fails_a_scrubber_that_finds_nothing_or_masks_everything(corpus):
    # Prepare
    bench = _load("scrub_bench")
    nothing = lambda text, language: SimpleNamespace(spans=())  # noqa: E731
    everything = lambda text, language: SimpleNamespace(  # noqa: E731
        spans=(SimpleNamespace(start=0, end=len(text), category="name"),))

    # Execute
    blind, blunt = bench.evaluate(corpus, nothing), bench.evaluate(corpus, everything)

    # Assert
    assert blind["overall"]["all"]["recall"] == 0.0
    assert all(r["all"]["recall"] in (0.0, None) for r in blind["per_category"].values())
    assert blind["overall"]["all"]["clinical_kept"] == 1.0
    assert blunt["overall"]["all"]["recall"] == 1.0
    assert blunt["overall"]["all"]["clinical_kept"] == 0.0
    assert blunt["overall"]["all"]["placeholders_kept"] == 0.0
    assert blunt["overall"]["all"]["char_precision"] < 0.5
