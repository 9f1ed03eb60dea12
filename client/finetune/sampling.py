"""Which of a site's training records a fine-tuning run may use: a seeded fraction of its patients."""
from __future__ import annotations

import random

from client.data.sources.records import Record


def sampled_patients(records: list[Record], fraction: float, seed: int) -> list[str]:
    """``round(fraction x patients)`` (at least one) of the patients of ``records``, drawn from ``seed``.

    Whole patients, never some of one's images: a patient's studies are alike, so splitting them would
    make a 10 % sample look more varied than 10 % of the patients is. One seeded order serves every
    fraction, so a smaller sample is part of every larger one of the same seed (10 % within 100 %).
    """
    patients = sorted({r.patient_id for r in records})
    if not patients:
        return []
    random.Random(f"finetune-{seed}").shuffle(patients)
    return patients[:max(1, round(fraction * len(patients)))]


def sample_summary(records: list[Record], chosen: list[str], fraction: float, seed: int) -> dict:
    """What results.json says about the sample: how many patients, records and images of how many."""
    kept = set(chosen)
    picked = [r for r in records if r.patient_id in kept]
    return {"label_fraction": fraction, "seed": seed,
            "patients": len(kept), "of_patients": len({r.patient_id for r in records}),
            "records": len(picked), "of_records": len(records),
            "images": len({r.image for r in picked if r.image}), "of_images": len({r.image for r in records if r.image})}
