"""Which findings a study has, how its report mentions them, and the CheXpert row that follows.

Findings come from a few latent causes (heart failure, infection, intensive care, a known nodule)
so they co-occur as in real wards: edema with cardiomegaly and effusion, pneumonia with
consolidation, tubes with atelectasis. The report's mentions are the single source of truth:
the CheXpert values, both reports' sentences and the image traces are all derived from them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared_model.findings import CHEXPERT_LABELS, PHRASES

PATHOLOGIES: tuple[str, ...] = tuple(
    label for label in CHEXPERT_LABELS if label not in ("Lung Opacity", "No Finding"))
"""The findings a report names directly, in report (CheXpert) order."""

OPACITY_SOURCES = ("Atelectasis", "Consolidation", "Edema", "Pneumonia", "Lung Lesion")
"""Findings that make `Lung Opacity` positive."""

NORMAL_RATE = 0.2  # studies with nothing at all
UNCERTAIN_RATE = 0.05  # share of mentions hedged ("Possible ...")
FAINT = 0.4  # trace strength of an uncertain mention, drawn half the time

NEGATION_RATE: dict[str, float] = {
    "Atelectasis": 0.1, "Cardiomegaly": 0.85, "Consolidation": 0.75, "Edema": 0.5,
    "Enlarged Cardiomediastinum": 0.3, "Fracture": 0.1, "Lung Lesion": 0.1,
    "Pleural Effusion": 0.85, "Pleural Other": 0.05, "Pneumonia": 0.15, "Pneumothorax": 0.85,
    "Support Devices": 0.03,
}
"""How often an absent finding is explicitly negated; the usual pertinent negatives dominate."""

POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0


@dataclass(frozen=True)
class Mention:
    """One sentence of the report: its CheXpert value and which paraphrase it uses."""

    value: float  # POSITIVE, NEGATIVE or UNCERTAIN
    phrase: int  # index into the English phrases of that kind (the Chinese is index mod length)


@dataclass(frozen=True)
class Risk:
    """A patient's lasting conditions, shared by all their studies."""

    cardiac: bool  # chronic heart disease: cardiomegaly, and heart failure episodes
    nodule: bool  # a known lung nodule


def sample_risk(rng: np.random.Generator) -> Risk:
    """Draw a patient's lasting conditions."""
    return Risk(cardiac=bool(rng.random() < 0.3), nodule=bool(rng.random() < 0.22))


def sample_present(rng: np.random.Generator, risk: Risk) -> frozenset[str]:
    """Draw the findings truly present in one study, with realistic co-occurrence."""
    u = rng.random(16)  # fixed number of draws keeps later draws aligned across label changes
    if u[0] < NORMAL_RATE:
        return frozenset()
    failure = u[1] < (0.6 if risk.cardiac else 0.12)
    infection = u[2] < 0.25
    icu = u[3] < 0.24
    pneumonia = infection and u[4] < 0.4
    present = {
        "Cardiomegaly": u[5] < (0.75 if risk.cardiac else 0.06) + (0.1 if failure else 0.0),
        "Edema": u[6] < (0.75 if failure else 0.06),
        "Pleural Effusion": u[7] < 0.1 + (0.4 if failure else 0.0) + (0.15 if icu else 0.0),
        "Enlarged Cardiomediastinum": u[8] < (0.12 if risk.cardiac else 0.04),
        "Pneumonia": pneumonia,
        "Consolidation": u[9] < (0.85 if pneumonia else 0.45 if infection else 0.12),
        "Atelectasis": u[10] < (0.5 if icu else 0.16),
        "Lung Lesion": u[11] < (0.85 if risk.nodule else 0.05),
        "Pneumothorax": u[12] < (0.4 if icu else 0.14),
        "Support Devices": u[13] < (0.9 if icu else 0.04),
        "Fracture": u[14] < 0.05,
        "Pleural Other": u[15] < 0.05,
    }
    return frozenset(label for label, is_present in present.items() if is_present)


def mention(rng: np.random.Generator, present: frozenset[str]) -> dict[str, Mention]:
    """Decide which findings the report names, and how.

    Present findings are always named; absent ones are negated at `NEGATION_RATE`; any mention
    is hedged at `UNCERTAIN_RATE`; the paraphrase is drawn uniformly.
    """
    out: dict[str, Mention] = {}
    for label in PATHOLOGIES:
        u = rng.random(3)
        if label in present:
            value = POSITIVE
        elif u[0] < NEGATION_RATE[label]:
            value = NEGATIVE
        else:
            continue
        if u[1] < UNCERTAIN_RATE:
            value = UNCERTAIN
        kind = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain"}[value]
        out[label] = Mention(value, int(u[2] * len(getattr(PHRASES["en"][label], kind))))
    if not out:  # a report always says something: the usual pertinent negative
        out["Pneumothorax"] = Mention(NEGATIVE, 0)
    return out


def chexpert_row(mentions: dict[str, Mention]) -> dict[str, float | None]:
    """The 14 CheXpert values of a study (None = not mentioned), in CHEXPERT_LABELS order.

    `Lung Opacity` is positive when any opacity finding is; `No Finding` is 1.0 only when no
    finding is positive or uncertain (the impression then says so) and blank otherwise.
    """
    row: dict[str, float | None] = {label: None for label in CHEXPERT_LABELS}
    for label, m in mentions.items():
        row[label] = m.value
    if any(row[label] == POSITIVE for label in OPACITY_SOURCES):
        row["Lung Opacity"] = POSITIVE
    if is_normal(mentions):
        row["No Finding"] = POSITIVE
    return row


def is_normal(mentions: dict[str, Mention]) -> bool:
    """True when no finding is positive or uncertain."""
    return all(m.value == NEGATIVE for m in mentions.values())


def trace_strengths(rng: np.random.Generator, mentions: dict[str, Mention]) -> dict[str, float]:
    """How strongly each finding shows in the images: full if positive, faint half the time if
    uncertain, absent otherwise (so pixels never contradict the report)."""
    out: dict[str, float] = {}
    for label in PATHOLOGIES:
        draw = rng.random()
        m = mentions.get(label)
        if m is None or m.value == NEGATIVE:
            continue
        if m.value == POSITIVE:
            out[label] = 1.0
        elif draw < 0.5:
            out[label] = FAINT
    return out
