"""Verbatim regurgitation: how much of what a report generator writes is copied from its training reports.

Texts are compared as the report scores compare them (``shared_model.text_metrics.normalize_report``:
English R2Gen-cleaned lowercase words with punctuation as tokens, Chinese one token per character),
so "verbatim" ignores case, spacing and the decoder's punctuation spacing. For each generated report:

- ``verbatim_train``: it equals a training report;
- ``verbatim_train_only``: it equals a training report that is not also a test reference (on
  template-like data most short reports recur in every split: copying one of those is not memorising
  a patient);
- ``longest_ngram``: the longest token n-gram it shares with any training report;
- ``train_only_8gram``: it holds an 8-gram that occurs in a training report and in no test
  reference: text particular to the training patients;
- ``secret``: it holds an inserted canary's secret (digits, spacing ignored); ``control_secret``:
  a never-inserted canary's (chance of writing such digits at all).
"""
from __future__ import annotations

from collections.abc import Iterable

from shared_model.text_metrics import normalize_report

NGRAM = 8


def tokens(text: str, language: str) -> tuple[str, ...]:
    return tuple(normalize_report(text, language).split())


def _ngrams(seq: tuple[str, ...], n: int) -> Iterable[tuple[str, ...]]:
    return (seq[i:i + n] for i in range(len(seq) - n + 1))


class Corpus:
    """One language's reports as token sequences, with their n-gram sets built on demand."""

    def __init__(self, texts: Iterable[str], language: str) -> None:
        self.language = language
        self.seqs = {tokens(t, language) for t in texts}
        self._sets: dict[int, set[tuple[str, ...]]] = {}

    def ngrams(self, n: int) -> set[tuple[str, ...]]:
        if n not in self._sets:
            self._sets[n] = {g for s in self.seqs for g in _ngrams(s, n)}
        return self._sets[n]

    def longest_shared(self, seq: tuple[str, ...]) -> int:
        """The largest n such that some n-gram of ``seq`` is in the corpus (shared n-grams nest: binary search)."""
        low, high = 0, len(seq)
        while low < high:
            mid = (low + high + 1) // 2
            if any(g in self.ngrams(mid) for g in _ngrams(seq, mid)):
                low = mid
            else:
                high = mid - 1
        return low


def _digits(text: str) -> str:
    return "".join(text.split())


def regurgitation(generated: list[tuple[str, str]], *, train: list[tuple[str, str]], test: list[tuple[str, str]],
                  secrets: list[str], control_secrets: list[str]) -> dict:
    """Fractions over ``generated`` ((language, text) pairs) of the measures in the module docstring."""
    languages = sorted({lang for lang, _ in generated})
    corpora = {lang: Corpus((t for l, t in train if l == lang), lang) for lang in languages}
    refs = {lang: Corpus((t for l, t in test if l == lang), lang) for lang in languages}
    train_only = {lang: corpora[lang].ngrams(NGRAM) - refs[lang].ngrams(NGRAM) for lang in languages}
    rows = []
    for lang, text in generated:
        seq, corpus, ref = tokens(text, lang), corpora[lang], refs[lang]
        flat, only = _digits(text), train_only[lang]
        rows.append({"language": lang, "verbatim_train": seq in corpus.seqs,
                     "verbatim_train_only": seq in corpus.seqs and seq not in ref.seqs,
                     "longest_ngram": corpus.longest_shared(seq), "length": len(seq),
                     "train_only_8gram": any(g in only for g in _ngrams(seq, NGRAM)),
                     "secret": any(s in flat for s in secrets),
                     "control_secret": any(s in flat for s in control_secrets)})
    n = len(rows)

    def frac(key: str) -> float | None:
        return sum(bool(r[key]) for r in rows) / n if n else None

    longest = [r["longest_ngram"] for r in rows]
    return {"generated": n, "by_language": {lang: sum(r["language"] == lang for r in rows) for lang in languages},
            "verbatim_train": frac("verbatim_train"), "verbatim_train_only": frac("verbatim_train_only"),
            "train_only_8gram": frac("train_only_8gram"), "secret": frac("secret"),
            "control_secret": frac("control_secret"),
            "longest_ngram_mean": sum(longest) / n if n else None, "longest_ngram_max": max(longest, default=None),
            "mean_length": sum(r["length"] for r in rows) / n if n else None,
            "tokens": "normalize_report tokens (en: R2Gen-cleaned words, zh: characters)", "ngram": NGRAM}
