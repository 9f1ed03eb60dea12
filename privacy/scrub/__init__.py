"""De-identification of report text at the site, before any use (training, bank, evaluation, previews).

``scrub_report(text, language)`` returns the text with every identifier found replaced by ``___``
(MIMIC-CXR's own mark, one token for the tokenizer) and the spans found, by category. Rules, not a
model: nothing is downloaded, the same text always gives the same result, and each category's
recall and the clinical words kept are measured (``bench/scrub_bench.py``, BENCHMARKS.md).
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from privacy.scrub.names import find_chinese, find_english
from privacy.scrub.rules import find
from privacy.scrub.spans import CATEGORIES, PLACEHOLDER, Scrubbed, Span, apply, resolve

__all__ = ["CATEGORIES", "PLACEHOLDER", "Scrubbed", "Span", "rules_version", "scrub_report"]


def scrub_report(text: str, language: str = "en") -> Scrubbed:
    """Both languages' rules run on every report: an English report can quote a Chinese name and a
    Chinese one an English address; ``language`` is kept for callers that report per language."""
    spans = resolve(find(text) + find_english(text) + find_chinese(text), text)
    return Scrubbed(apply(text, spans), tuple(spans))


@lru_cache(maxsize=1)
def rules_version() -> str:
    """A hash of the rules' source and the name lists' version: a stored result is only reused by
    the same rules (``client.data.sources.scrubbing`` keys its cache on it)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    try:
        digest.update(metadata.version("faker").encode())
    except metadata.PackageNotFoundError:
        pass
    return digest.hexdigest()[:16]
