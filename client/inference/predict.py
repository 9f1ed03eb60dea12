"""Zero-shot finding scores and generated reports for image files, read exactly as training reads them.

Each file goes through ``client.data.images.load_image`` and ``to_model_input`` and is stored as
the same uint8 the training store holds, so a prediction sees the pixels a site trained on. The
finding scores are the zero-shot AUC's scores (``shared_model.evaluate.finding_scores`` averaged
over the EN and ZH prompts): the image's similarity to a finding's positive prompt minus its
negative prompt. They rank images; they are not calibrated probabilities.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from client.data.images import load_image, to_model_input
from client.errors import DataError
from client.inference.bank import Bank
from client.inference.model_files import InferenceModel
from shared_model.evaluate import PROMPT_LANGUAGES, embed_images, ensemble, finding_scores, generate_reports
from shared_model.findings import CHEXPERT_LABELS, LANGUAGES, PHRASES
from shared_model.generation import GenerationSettings

# Every finding with zero-shot prompts (Lung Opacity has none: it summarises the opacity findings).
SCORED_FINDINGS = tuple(label for label in CHEXPERT_LABELS if all(label in PHRASES[lang] for lang in LANGUAGES))
CHUNK = 64  # images decoded, embedded and answered together: memory stays flat over a long file list


@dataclass(frozen=True)
class PredictConfig:
    """What ``m3fed predict`` answers for each file."""

    languages: tuple[str, ...] = LANGUAGES  # a report in each
    findings: tuple[str, ...] = SCORED_FINDINGS
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    ct_window: tuple[float, float] | None = None  # None: the lung window training uses

    def __post_init__(self) -> None:
        unknown = sorted(set(self.languages) - set(LANGUAGES))
        if unknown or not self.languages:
            raise ValueError(f"languages must be among {', '.join(LANGUAGES)}, got {', '.join(self.languages)}")
        for language in self.languages:
            self.generation.options(language)


def model_input(path: str, size: int, ct_window: tuple[float, float] | None = None) -> np.ndarray:
    """(1, size, size) uint8: what the decoded-image store holds for this file (DataError if unusable)."""
    pixels = to_model_input(load_image(path, ct_window=ct_window), size)
    return np.round(pixels * 255).astype(np.uint8)[None]


def predict_files(loaded: InferenceModel, bank: Bank, files: list[str], cfg: PredictConfig,
                  device: torch.device) -> Iterator[dict]:
    """One answer per file, in order: ``{"file", "findings": {name: score}, "reports": {lang: text}}``,
    or ``{"file", "error"}`` for a file that cannot be read (the others are still answered)."""
    for start in range(0, len(files), CHUNK):
        answers: list[dict] = []
        arrays = []
        for path in files[start:start + CHUNK]:
            try:
                arrays.append(model_input(path, loaded.model.cfg.image_size, cfg.ct_window))
                answers.append({"file": path})
            except DataError as exc:
                answers.append({"file": path, "error": exc.reason})
        if arrays:
            _answer(loaded, bank, torch.from_numpy(np.stack(arrays)), cfg, device,
                    [a for a in answers if "error" not in a])
        yield from answers


def _answer(loaded: InferenceModel, bank: Bank, images: torch.Tensor, cfg: PredictConfig, device: torch.device,
            answers: list[dict]) -> None:
    model = loaded.model
    emb = embed_images(model, images, device)
    scores = ensemble(finding_scores(model, emb, cfg.findings, PROMPT_LANGUAGES, device))
    reports = {lang: generate_reports(model, emb, bank.embeddings, lang, device, settings=cfg.generation)
               for lang in cfg.languages}
    for i, answer in enumerate(answers):
        answer["findings"] = {name: round(float(scores[name][i]), 4) for name in cfg.findings}
        answer["reports"] = {lang: texts[i] for lang, texts in reports.items()}
