"""Server-side evaluation of the global model on the held-out test split.

In a simulation the researcher owns the data, so the server evaluates on the dataset's official
test split (run config ``data``). Every round: zero-shot AUC (cheap). Final round: also reports
generated from the test images in every language, scored overall and per site (the test patients
each site holds), which shows cross-language generation for single-language sites.

Model selection (``shared_model.selection``) scores on the official validate split instead, which
never reaches a site: ``validate`` gives the AUC over every validate image, and the BLEU-4 of
reports generated from a fixed sample of them (``sampled_references``) when a report-generation
stage selects on it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from client.data.dataset import decode
from client.data.image_store import decode_stored
from client.data.evaldata import bank_texts, evaluation_inputs, image_groups, sampled_records, sampled_references
from client.data.sources import load_records
from shared_model.evaluate import PROMPT_LANGUAGES, embed_images, ensemble, evaluate_model, finding_scores, scorable
from shared_model.findings import DEFAULT_EVAL_LABELS
from shared_model.model import M3FM


def site_of_test_patients(run_dir: Path, sites: list[str]) -> dict[str, str]:
    """patient id -> site, from the ``split: test`` rows of each site's manifest."""
    owner = {}
    for name in sites:
        path = run_dir / "sites" / name / "manifest.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if row.get("split") == "test":
                    owner[str(row["patient_id"])] = name
    return owner


class ServerEvaluation:
    """Decodes the test images once; ``__call__`` scores a model."""

    def __init__(self, data: str, image_size: int, *, seed: int, run_dir: Path, sites: list[str],
                 max_records: int = 0, store: str = "") -> None:
        records, report = load_records(data)
        splits = evaluation_records(records, max_records, seed)
        decoded = (lambda rs: decode_stored(rs, image_size, report, store=store)) if store else (  # noqa: E731
            lambda rs: decode(rs, image_size, report))
        test = decoded(splits["test"])
        self.inputs = evaluation_inputs(test, DEFAULT_EVAL_LABELS)
        validate = decoded(splits["validate"])
        self.validate_inputs = sampled_references(evaluation_inputs(validate, DEFAULT_EVAL_LABELS), seed=seed)
        # The memory bank needs only the texts of the training reports, never their images.
        # A quick look (max_records) embeds a bank the size of its sample, not 2,000 reports.
        self.bank = bank_texts([r for r in records if r.split == "train"], min(2000, max_records or 2000), seed)
        self.groups = image_groups(test, site_of_test_patients(run_dir, sites))
        self.data_report = report.summary(test.records)

    def __call__(self, model: M3FM, device: torch.device, *, reports: bool) -> dict:
        return evaluate_model(model, **self.inputs, bank_texts=self.bank, device=device, reports=reports,
                              groups=self.groups if reports else None)

    def validate(self, model: M3FM, device: torch.device, *, metric: str) -> dict:
        """The model on the validate split: AUC, and (``metric == "bleu4"``) generated reports' BLEU-4.
        Empty when the data has no validate images (selection then keeps the latest round)."""
        if not len(self.validate_inputs["images"]):
            return {}
        return evaluate_model(model, **self.validate_inputs, bank_texts=self.bank, device=device,
                              reports=metric == "bleu4")

    def finding_scores(self, model: M3FM, device: torch.device) -> dict[str, np.ndarray]:
        """Each test image's score per scorable finding, as the AUC uses it (for paired comparisons)."""
        labels = scorable(self.inputs["labels"])
        image_emb = embed_images(model, self.inputs["images"], device)
        return ensemble(finding_scores(model, image_emb, labels, PROMPT_LANGUAGES, device))


def evaluation_records(records: list, max_records: int, seed: int) -> dict[str, list]:
    """The records a simulation's server scores: the test and validate splits, each a seeded sample of
    whole patients under ``max_records`` (0: all)."""
    return {split: sampled_records([r for r in records if r.split == split], max_records, seed)
            for split in ("test", "validate")}


def federated_metrics(per_site: dict[str, dict]) -> dict:
    """A deployment's round metrics: the sites' own scores on their test patients, weighted by images.

    AUC over the sites that released one; BLEU-4 per language over the sites writing it.
    """
    scored = [s for s in per_site.values() if s.get("status") == "ok" and s.get("test_images")]
    aucs = [(s["auc_macro"], s["test_images"]) for s in scored if s.get("auc_macro") is not None]
    bleu: dict[str, list[tuple[float, int]]] = {}
    for s in scored:
        for lang, value in s.get("bleu4_by_language", {}).items():
            bleu.setdefault(lang, []).append((value, s["test_images"]))

    def mean(pairs):
        return sum(v * n for v, n in pairs) / sum(n for _, n in pairs) if pairs else None
    return {"auc_macro": mean(aucs), "bleu": {lang: {"bleu4": mean(p)} for lang, p in sorted(bleu.items())},
            "evaluated_by": f"{len(scored)} site(s) on their own test patients"}
