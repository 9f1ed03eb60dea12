"""Personalisation: every virtual site of a finished simulation fine-tunes the global model on its own data.

It is ``m3fed finetune`` at each site (all of its training records, ``label_fraction`` 1), the local
adaptation a hospital makes after the federation; each site's fine-tuned run is kept under
``RUNDIR/sites/<site>/personalised/``. The global model's AUC beside it is its zero-shot AUC on the
same test patients and findings, so the two columns differ only by the site's own fine-tuning.
"""
from __future__ import annotations

import math
from pathlib import Path

from rich.console import Console

from client.errors import DataError
from client.finetune.config import FinetuneConfig
from client.finetune.run import run_finetune

FOLDER = "personalised"


def personalise_sites(run_dir: Path, specs: list[dict], *, seed: int, device: str = "auto", image_cache: str = "",
                      workers: int = 0, console: Console | None = None, **settings) -> dict:
    """site -> {"global_auc", "personalised_auc", "global_bleu4", "personalised_bleu4", ...}, or
    {"skipped": reason} for a site that cannot be personalised (text-only, unusable data): the others go on.
    ``settings``: further ``FinetuneConfig`` fields (epochs, tune, ...)."""
    console = console or Console(quiet=True)
    out = {}
    for spec in specs:
        name = spec["name"]
        if spec.get("text_only"):
            out[name] = {"skipped": "text-only site: no images to classify or report on"}
            continue
        cfg = FinetuneConfig(model=str(run_dir), data=str(run_dir / "sites" / name / "manifest.jsonl"),
                             out=str(run_dir / "sites" / name / FOLDER), label_fraction=1.0, seed=seed,
                             device=device, image_cache=image_cache, workers=workers, **settings)
        console.print(f"personalising {name}")
        try:
            results = run_finetune(cfg, console)
        except DataError as exc:
            out[name] = {"skipped": exc.reason}
            continue
        out[name] = {"global_auc": results["zero_shot"]["auc_macro"], "personalised_auc": results["final"]["auc_macro"],
                     "global_bleu4": _bleu4(results["zero_shot"]), "personalised_bleu4": _bleu4(results["final"]),
                     "findings": results["findings"], "training_patients": results["sampled"]["patients"],
                     "run_dir": str(Path("sites") / name / FOLDER)}
    return out


def _bleu4(block: dict) -> float | None:
    """BLEU-4 of the reports, averaged over the site's languages (None when none were generated)."""
    values = [b["bleu4"] for b in (block.get("bleu") or {}).values() if b and b.get("bleu4") is not None]
    return sum(values) / len(values) if values and all(math.isfinite(v) for v in values) else None
