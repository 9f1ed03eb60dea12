"""What a site contributes: the report languages and image modalities its ``site.yaml`` selects.

A record is contributed when its report's language is selected and its study has nothing of an
unselected modality. A study with an unselected modality is left out whole (every image, report
and translation of it, text-only rows included): keeping its report as a text-only example would
send what the site chose to keep home, so the safe reading is that the site does not contribute
that study at all. What is left out is counted and reported, never dropped silently.
"""
from __future__ import annotations

from collections import Counter

from client.data.sources.records import Record


def select_records(records: list[Record], *, languages: tuple[str, ...] | None = None,
                   modalities: tuple[str, ...] | None = None) -> tuple[list[Record], dict]:
    """(the contributed records, what was left out); None selects every language / modality.

    The second item: ``records`` left out, and per unselected value how many of them it left out
    (``languages``: by their report's language; ``modalities``: by the modality that made their
    study unselected; a record may count under both), plus what the data holds before the
    selection (``in_data``, with its training records) and the training records kept
    (``train_contributed``).
    """
    unselected = {}  # study -> its modalities that are not selected
    if modalities is not None:
        for r in records:
            if r.modality not in modalities:
                unselected.setdefault((r.patient_id, r.study_id), set()).add(r.modality)
    kept, by_language, by_modality, left_out = [], Counter(), Counter(), 0
    for r in records:
        language_out = languages is not None and r.language not in languages
        study_out = unselected.get((r.patient_id, r.study_id), ())
        if not language_out and not study_out:
            kept.append(r)
            continue
        left_out += 1
        by_language.update([r.language] if language_out else [])
        by_modality.update(study_out)
    return kept, {"records": left_out, "languages": dict(sorted(by_language.items())),
                  "modalities": dict(sorted(by_modality.items())),
                  "in_data": {"languages": dict(sorted(Counter(r.language for r in records).items())),
                              "modalities": dict(sorted(Counter(r.modality for r in records).items())),
                              "train": sum(r.split == "train" for r in records)},
                  "train_contributed": sum(r.split == "train" for r in kept)}


def describe_left_out(left_out: dict) -> str:
    """``84 records (zh: 84)``: the not-contributed count for people."""
    parts = [f"{value}: {n}" for group in ("languages", "modalities") for value, n in left_out[group].items()]
    return f"{left_out['records']} records" + (f" ({', '.join(parts)})" if parts else "")
