"""Report texts for a model shipped without a site's own bank: template reports, no patient's words.

Written from the finding sentences of ``shared_model.findings.PHRASES`` (the zero-shot prompts'
sentences, and the sentences the synthetic MIMIC-CXR generator writes its reports with), laid
out as a site's training text is: the FINDINGS sentences in CheXpert order, then an IMPRESSION
restating the positive and uncertain ones, or "No acute cardiopulmonary process.". Seeded, so
the same texts come back everywhere; nothing is read from disk or downloaded.

A hospital's own bank (``m3fed bank build --data``) describes its patients in its radiologists'
words and is the better bank; this one only keeps a model usable until there is one.
"""
from __future__ import annotations

import random

from shared_model.findings import CHEXPERT_LABELS, PHRASES

# The findings a report names one by one (Lung Opacity and No Finding are summaries of them).
NAMED = tuple(label for label in CHEXPERT_LABELS if label not in ("Lung Opacity", "No Finding"))
TEMPLATE_VERSION = "1"
DEFAULT_STUDIES = 1000  # studies drawn; a bank holds each distinct text once
_NORMAL, _POSITIVE, _NEGATED, _UNCERTAIN = 0.2, 0.2, 0.45, 0.05


def _mentions(rng: random.Random) -> list[tuple[str, str, int]]:
    """(finding, positive|negative|uncertain, paraphrase draw) of one study, in report order."""
    normal = rng.random() < _NORMAL
    out = []
    for label in NAMED:
        u, hedge, phrase = rng.random(), rng.random(), rng.randrange(1 << 16)
        if not normal and u < _POSITIVE:
            kind = "positive"
        elif u < _POSITIVE + _NEGATED:
            kind = "negative"
        else:
            continue
        out.append((label, "uncertain" if hedge < _UNCERTAIN and kind == "positive" else kind, phrase))
    return out or [("Pneumothorax", "negative", 0)]


def _sentence(language: str, label: str, kind: str, phrase: int) -> str:
    options = getattr(PHRASES[language][label], kind)
    return options[phrase % len(options)]


def _report(language: str, mentions: list[tuple[str, str, int]]) -> str:
    joiner = " " if language == "en" else ""
    findings = [_sentence(language, *m) for m in mentions]
    impression = [_sentence(language, *m) for m in mentions if m[1] != "negative"] \
        or [PHRASES[language]["No Finding"].positive[0]]
    return joiner.join(findings + impression)


def template_reports(languages: tuple[str, ...] = ("en", "zh"), *, studies: int = DEFAULT_STUDIES,
                     seed: int = 0) -> list[tuple[str, str]]:
    """Distinct (text, language) pairs from ``studies`` drawn studies, in first-drawn order."""
    rng = random.Random(f"m3fed-template-bank-{TEMPLATE_VERSION}-{seed}")
    seen: dict[tuple[str, str], None] = {}
    for _ in range(studies):
        mentions = _mentions(rng)
        for language in languages:
            seen.setdefault((_report(language, mentions), language), None)
    return list(seen)
