"""English (MIMIC-CXR style) and Chinese reports written from one study's mentions.

Both languages take their sentences from `shared_model.findings.PHRASES`, so the words a model is
scored on are the zero-shot prompts' words, and the Chinese report is a sentence-by-sentence
translation of the English one (same finding, same kind, same paraphrase where one exists).
FINDINGS lists the mentions in CheXpert order; IMPRESSION restates the positive and uncertain
ones, or says the study is normal. This keeps reports template-like enough for report generation
to reach a high BLEU from the image alone, while paraphrases and optional negations keep it from
being trivial.
"""
from __future__ import annotations

import textwrap

import numpy as np

from shared_model.findings import PHRASES

from .labels import NEGATIVE, POSITIVE, UNCERTAIN, PATHOLOGIES, Mention, is_normal

WIDTH = 79  # MIMIC-CXR report lines are at most 79 characters

TECHNIQUE: dict[str, str] = {
    "CHEST (PA AND LAT)": "Chest PA and lateral",
    "CHEST (PORTABLE AP)": "Portable AP chest radiograph",
    "CT CHEST W/O CONTRAST": ("Multidetector CT images of the chest were obtained without "
                              "intravenous contrast. Axial images were reviewed."),
}

INDICATIONS: tuple[str, ...] = (
    "___-year-old man with shortness of breath.",
    "___F with cough and fever, evaluate for pneumonia.",
    "___M with chest pain. Evaluate for acute process.",
    "___ year old woman with dyspnea, assess for interval change.",
    "History: ___M status post fall.",
    "___-year-old woman, intubated. Evaluate tube position.",
    "___F with hypoxia. ___.",
    "___M with congestive heart failure, evaluate for edema.",
)
"""Indications are drawn independently of the findings, so they leak nothing about the image."""

COMPARISONS: tuple[str, ...] = ("___", "None.", "Chest radiograph from ___.")

_KIND = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain"}


def sentence(label: str, m: Mention, language: str) -> str:
    """The sentence that states mention `m` of `label` in `language`."""
    options: tuple[str, ...] = getattr(PHRASES[language][label], _KIND[m.value])
    return options[m.phrase % len(options)]


def findings_sentences(mentions: dict[str, Mention], language: str) -> list[str]:
    """Every mention, in CheXpert order."""
    return [sentence(label, mentions[label], language) for label in PATHOLOGIES
            if label in mentions]


def impression_sentences(mentions: dict[str, Mention], language: str) -> list[str]:
    """The positive and uncertain mentions again, or the normal-study sentence."""
    if is_normal(mentions):
        return [PHRASES[language]["No Finding"].positive[0]]
    return [sentence(label, mentions[label], language) for label in PATHOLOGIES
            if label in mentions and mentions[label].value != NEGATIVE]


def english(procedure: str, mentions: dict[str, Mention], rng: np.random.Generator) -> str:
    """A MIMIC-CXR style free-text report (`___` marks removed PHI)."""
    indication = INDICATIONS[int(rng.integers(len(INDICATIONS)))]
    comparison = COMPARISONS[int(rng.integers(len(COMPARISONS)))]
    lines = ["FINAL REPORT".center(WIDTH - 2).rstrip()]
    for header, text in (("EXAMINATION", procedure), ("INDICATION", indication),
                         ("TECHNIQUE", TECHNIQUE[procedure]), ("COMPARISON", comparison)):
        lines += _wrap(f"{header}:  {text}") + [""]
    lines += [" FINDINGS:", ""] + _wrap(" ".join(findings_sentences(mentions, "en"))) + [""]
    lines += [" IMPRESSION:", ""] + _wrap(" ".join(impression_sentences(mentions, "en")))
    return "\n".join(lines) + "\n"


def chinese(mentions: dict[str, Mention]) -> str:
    """The Chinese report of the same mentions, with 检查所见 (findings) and 印象 (impression)."""
    return ("检查所见：\n" + "".join(findings_sentences(mentions, "zh")) + "\n\n印象：\n"
            + "".join(impression_sentences(mentions, "zh")) + "\n")


def _wrap(text: str) -> list[str]:
    """Wrap one paragraph to MIMIC's line width, each line indented by one space."""
    return textwrap.wrap(text, width=WIDTH, initial_indent=" ", subsequent_indent=" ",
                         break_long_words=False, break_on_hyphens=False)
