"""What every data source produces: one record per image (or per text-only report) and language."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

SPLITS = ("train", "validate", "test")
MODALITIES = ("CXR", "CT")


@dataclass(frozen=True)
class Record:
    """One training/evaluation example. ``image`` is None for text-only reports."""

    patient_id: str
    study_id: str
    image: str | None
    report: str
    language: str
    split: str
    modality: str
    view: str = ""
    labels: dict[str, float] = field(default_factory=dict)  # 1, 0, -1 or nan (not mentioned)


@dataclass
class DataReport:
    """Counts and every skipped item with its reason: nothing is dropped silently."""

    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # identifiers removed from the reports (client.data.sources.scrubbing); off: {"on": False}
    scrub: dict = field(default_factory=lambda: {"on": False})

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def summary(self, records: list[Record]) -> dict:
        labels: dict[str, Counter] = {}
        for r in records:
            for name, value in r.labels.items():
                key = "blank" if math.isnan(value) else str(int(value))
                labels.setdefault(name, Counter())[key] += 1
        return {
            "source": self.source,
            "records": len(records),
            "images": len({r.image for r in records if r.image}),
            "patients": len({r.patient_id for r in records}),
            "by_split": dict(Counter(r.split for r in records)),
            "by_language": dict(Counter(r.language for r in records)),
            "by_modality": dict(Counter(r.modality for r in records)),
            "text_only": sum(r.image is None for r in records),
            "labels": {k: dict(v) for k, v in sorted(labels.items())},
            "scrub": self.scrub,
            "skipped": len(self.skipped),
            "skipped_reasons": dict(Counter(reason.split(":")[0] for _, reason in self.skipped)),
            "skipped_items": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def parse_label(value: str) -> float:
    """CheXpert convention: '1.0' positive, '0.0' negative, '-1.0' uncertain, blank = not mentioned."""
    text = value.strip()
    if text == "":
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"unknown label value {value!r} (expected 1.0, 0.0, -1.0 or blank)") from None
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"unknown label value {value!r} (expected 1.0, 0.0, -1.0 or blank)")
    return number
