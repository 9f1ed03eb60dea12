"""Found identifiers as character spans, and the one way they are removed."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

PLACEHOLDER = "___"  # MIMIC-CXR's own mark for removed PHI: the tokenizer already knows it as one token
CATEGORIES = ("name", "date", "id", "phone", "email", "url", "address", "postcode", "age", "cn_id", "hospital")
# Placeholders the public datasets already carry (MIMIC ``___``, IU X-Ray ``XXXX``): kept as they are.
KEPT = re.compile(r"_{2,}|X{3,}")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    category: str

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}")


@dataclass(frozen=True)
class Scrubbed:
    text: str
    spans: tuple[Span, ...]  # in the original text

    def counts(self) -> Counter:
        return Counter(s.category for s in self.spans)


def resolve(spans: list[Span], text: str) -> list[Span]:
    """Overlapping candidates: the longest wins (ties: the first rule's), the rest are dropped.

    Spans are trimmed of surrounding whitespace and never cover a kept placeholder's characters
    only, so ``___`` stays as it was."""
    trimmed = []
    for s in spans:
        start, end = s.start, s.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start and not KEPT.fullmatch(text[start:end]):
            trimmed.append(Span(start, end, s.category))
    chosen: list[Span] = []
    order = sorted(range(len(trimmed)), key=lambda i: (-(trimmed[i].end - trimmed[i].start), i))
    taken = [False] * len(text)
    for i in order:
        s = trimmed[i]
        if not any(taken[s.start:s.end]):
            chosen.append(s)
            taken[s.start:s.end] = [True] * (s.end - s.start)
        elif not all(taken[s.start:s.end]):
            # A longer span covers part of it: keep the uncovered part as its own pieces, so a partly
            # overlapping identifier is never left half visible.
            run_start = None
            for k in range(s.start, s.end + 1):
                free = k < s.end and not taken[k]
                if free and run_start is None:
                    run_start = k
                elif not free and run_start is not None:
                    lo, hi = run_start, k
                    while lo < hi and not text[lo].isalnum():
                        lo += 1
                    while hi > lo and not text[hi - 1].isalnum():
                        hi -= 1
                    if hi > lo:
                        chosen.append(Span(lo, hi, s.category))
                        taken[lo:hi] = [True] * (hi - lo)
                    run_start = None
    return sorted(chosen, key=lambda s: s.start)


def apply(text: str, spans: list[Span]) -> str:
    out, last = [], 0
    for s in spans:
        out.append(text[last:s.start])
        out.append(PLACEHOLDER)
        last = s.end
    out.append(text[last:])
    return "".join(out)
