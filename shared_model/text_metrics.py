"""Report-generation scores (BLEU-1..4, ROUGE-L) computed the way published numbers are.

Published chest X-ray report numbers (R2Gen, M3FM, PromptNet, ...) come from pycocoevalcap on
R2Gen-cleaned text, and BLEU moves by points with tokenisation, so this module reproduces both
exactly rather than calling a "similar" BLEU. pycocoevalcap itself stays a test-only oracle.

Scoring normalisation (``normalize_report``), applied to references and hypotheses alike:

* ``"en"``: R2Gen's ``clean_report_mimic_cxr`` verbatim: ``\\n`` -> space, ``__`` -> ``_``,
  double spaces and ``..`` collapsed (each by a fixed number of ``replace`` calls), the
  enumerations ``1. `` / ``. 2. `` .. ``. 5. `` / `` 2. `` .. `` 5. `` stripped, then
  ``strip().lower().split('. ')``; per sentence ``" / \\ '`` are removed and then
  ``re.sub('[.,?;*!%^&_+():-\\[\\]{}]', '', s)``, whose ``:-\\[`` is a character *range*
  (0x3A-0x5B: ``: ; < = > ? @ [`` and A-Z) while hyphens and digits survive; sentences are
  rejoined as ``' . '.join(...) + ' .'`` so periods are tokens. The result is re-joined on
  single spaces, as R2Gen's ``decode_batch`` output is. One deviation: blank input gives ``""``
  (R2Gen would give ``"."``, crediting an empty generation with a matched period).
* ``"zh"``: all whitespace removed (generated Chinese is de-spaced, so spaces carry no
  information), then one token per character, punctuation such as ``，。`` included, except
  that each maximal run of ASCII letters/digits (``CT``, ``12mm``) is one token; tokens are
  joined by single spaces. This is M3FM's character-level BLEU, not jieba-word BLEU: the two
  are not comparable.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

# pycocoevalcap BleuScorer constants: keep a zero n-gram match at ~0 instead of dividing by 0.
_TINY = 1e-15
_SMALL = 1e-9
# pycocoevalcap Rouge: recall weighted 1.2x precision.
_ROUGE_BETA = 1.2

# R2Gen's regex, kept byte for byte (including the ':-\[' range) so scores stay comparable.
_R2GEN_SENTENCE_JUNK = re.compile("[.,?;*!%^&_+():-\\[\\]{}]")
_ZH_TOKEN = re.compile(r"[A-Za-z0-9]+|\S")


def _r2gen_clean_mimic_cxr(report: str) -> str:
    """R2Gen ``Tokenizer.clean_report_mimic_cxr`` (zhjohnchan/R2Gen@e8cd3cf), unchanged."""
    text = report.replace("\n", " ")
    for old, new, times in (("__", "_", 7), ("  ", " ", 6), ("..", ".", 8)):
        for _ in range(times):
            text = text.replace(old, new)
    text = text.replace("1. ", "")
    for n in "2345":
        text = text.replace(f". {n}. ", ". ")
    for n in "2345":
        text = text.replace(f" {n}. ", ". ")
    sentences = text.strip().lower().split(". ")
    cleaned = [
        _R2GEN_SENTENCE_JUNK.sub("", s.replace('"', "").replace("/", "").replace("\\", "")
                                 .replace("'", "").strip().lower())
        for s in sentences
    ]
    return " . ".join(cleaned) + " ."


def _normalize_en(text: str) -> str:
    return " ".join(_r2gen_clean_mimic_cxr(text).split()) if text.strip() else ""


def _normalize_zh(text: str) -> str:
    return " ".join(_ZH_TOKEN.findall("".join(text.split())))


_NORMALIZERS: dict[str, Callable[[str], str]] = {"en": _normalize_en, "zh": _normalize_zh}


def normalize_report(text: str, language: str) -> str:
    """Return ``text`` as single-space-separated scoring tokens (rules in the module docstring)."""
    try:
        normalizer = _NORMALIZERS[language]
    except KeyError:
        raise ValueError(f"unknown report language {language!r}; expected one of "
                         f"{sorted(_NORMALIZERS)}") from None
    return normalizer(text)


def _check_pairs(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no reports to score")


def _ngram_counts(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references: Sequence[str], hypotheses: Sequence[str],
                max_n: int = 4) -> dict[str, float]:
    """Corpus BLEU-1..max_n on whitespace tokens, as pycocoevalcap ``Bleu(n)`` with one reference.

    Clipped n-gram matches and hypothesis n-gram counts are summed over the corpus before
    dividing (not averaged per report); the brevity penalty uses the summed reference and
    hypothesis lengths. An empty hypothesis adds no matches, only reference length.
    """
    _check_pairs(references, hypotheses)
    if max_n < 1:
        raise ValueError(f"max_n must be >= 1, got {max_n}")
    correct, guess = [0] * max_n, [0] * max_n
    ref_len = hyp_len = 0
    for reference, hypothesis in zip(references, hypotheses):
        ref_tokens, hyp_tokens = reference.split(), hypothesis.split()
        ref_len += len(ref_tokens)
        hyp_len += len(hyp_tokens)
        for k in range(max_n):
            ref_counts = _ngram_counts(ref_tokens, k + 1)
            hyp_counts = _ngram_counts(hyp_tokens, k + 1)
            guess[k] += max(0, len(hyp_tokens) - k)
            correct[k] += sum(min(count, ref_counts[g]) for g, count in hyp_counts.items())
    ratio = (hyp_len + _TINY) / (ref_len + _SMALL)
    penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    scores: dict[str, float] = {}
    product = 1.0
    for k in range(max_n):
        product *= float(correct[k] + _TINY) / (guess[k] + _SMALL)
        scores[f"bleu{k + 1}"] = product ** (1.0 / (k + 1)) * penalty
    return scores


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Mean per-report ROUGE-L F-measure (beta 1.2), as pycocoevalcap ``Rouge``.

    Tokens come from ``split(" ")`` like pycocoevalcap, so an empty hypothesis is one empty
    token: it scores 0 against any non-empty reference instead of dividing by zero.
    """
    _check_pairs(references, hypotheses)
    scores = []
    for reference, hypothesis in zip(references, hypotheses):
        ref_tokens, hyp_tokens = reference.split(" "), hypothesis.split(" ")
        lcs = _lcs_length(ref_tokens, hyp_tokens)
        precision, recall = lcs / len(hyp_tokens), lcs / len(ref_tokens)
        if precision and recall:
            scores.append((1 + _ROUGE_BETA ** 2) * precision * recall
                          / (recall + _ROUGE_BETA ** 2 * precision))
        else:
            scores.append(0.0)
    return math.fsum(scores) / len(scores)


def score_reports(references: Sequence[str], hypotheses: Sequence[str],
                  language: str) -> dict[str, float]:
    """BLEU-1..4 and ``rougeL`` (fractions in [0, 1]) after ``normalize_report`` on both sides."""
    _check_pairs(references, hypotheses)
    refs = [normalize_report(r, language) for r in references]
    hyps = [normalize_report(h, language) for h in hypotheses]
    return {**corpus_bleu(refs, hyps, max_n=4), "rougeL": rouge_l(refs, hyps)}
