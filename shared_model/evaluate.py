"""Zero-shot diagnosis (AUC per finding) and zero-shot report generation from images."""
from __future__ import annotations

import math

import numpy as np
import torch

from shared_model.device import autocast
from shared_model.findings import prompt_pair
from shared_model.generation import GenerationSettings, other_language_tokens, tidy_report
from shared_model.lm import project_onto_bank
from shared_model.model import M3FM
from shared_model.text_metrics import score_reports

PROMPT_LANGUAGES = ("en", "zh")  # zero-shot prompts are scored in both and averaged


@torch.no_grad()
def embed_images(model: M3FM, images: torch.Tensor, device: torch.device, batch_size: int = 128) -> torch.Tensor:
    """uint8 (N, 1, S, S) -> (N, D) unit-norm image embeddings."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        with autocast(device):
            out.append(model.clip.encode_image(images[start:start + batch_size].to(device).float() / 255.0).float())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embed_dim)


@torch.no_grad()
def embed_texts(model: M3FM, texts: list[str], device: torch.device, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = model.tokenizer.encode_text(texts[start:start + batch_size], model.cfg.max_text_len)
        with autocast(device):
            out.append(model.clip.encode_text(ids.to(device), mask.to(device)).float())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embed_dim)


def finding_scores(model: M3FM, image_emb: torch.Tensor, names, languages: tuple[str, ...],
                   device: torch.device) -> dict[str, dict[str, np.ndarray]]:
    """finding -> language -> each image's (positive − negative prompt) similarity."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        out[name] = {}
        for lang in languages:
            pos, neg = embed_texts(model, list(prompt_pair(name, lang)), device)
            out[name][lang] = (image_emb @ (pos - neg)).cpu().numpy()
    return out


def ensemble(scores: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The score a finding's AUC is computed from: the mean over the prompt languages."""
    return {name: np.mean(list(by_lang.values()), axis=0) for name, by_lang in scores.items()}


def scorable(labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Findings whose test labels hold both classes once uncertain (-1) values are left out."""
    return {name: values for name, values in labels.items()
            if len(set((values[values != -1] == 1).tolist())) == 2}


def auc_per_finding(scores: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """AUC of each scorable finding from each image's score; uncertain (-1) images left out."""
    # Imported here: sklearn.metrics takes ~1.3 s, and a deployed site starts a fresh process
    # for every message, most of which (training, SecAgg+ stages) never score anything.
    from sklearn.metrics import roc_auc_score

    return {name: float(roc_auc_score(values[values != -1] == 1, scores[name][values != -1]))
            for name, values in scorable(labels).items()}


def macro(per_finding: dict[str, float]) -> float:
    return float(np.mean(list(per_finding.values()))) if per_finding else math.nan


def zero_shot_auc(model: M3FM, image_emb: torch.Tensor, labels: dict[str, np.ndarray],
                  languages: tuple[str, ...], device: torch.device) -> dict:
    """AUC per finding from (positive - negative) prompt similarity, prompts averaged over languages.

    Label values 1 are positives; 0 and blank (not mentioned) negatives; -1 (uncertain) is left out.
    Findings whose test labels hold a single class are left out of the macro average.
    """
    scores = finding_scores(model, image_emb, scorable(labels), languages, device)
    per_label = auc_per_finding(ensemble(scores), labels)
    per_language = {lang: auc_per_finding({name: s[lang] for name, s in scores.items()}, labels)
                    for lang in languages}
    return {"auc_macro": macro(per_label), "auc_per_label": per_label,
            "auc_macro_by_language": {lang: macro(v) for lang, v in per_language.items()}}


@torch.no_grad()
def generate_reports(model: M3FM, image_emb: torch.Tensor, bank: torch.Tensor, language: str,
                     device: torch.device, *, num_beams: int = 1, settings: GenerationSettings | None = None,
                     batch_size: int = 64) -> list[str]:
    """Image embedding -> bank projection -> decoder started with the language token.

    ``settings`` (default: ``GenerationSettings(num_beams=num_beams)``) say how to decode; the
    defaults keep a report from repeating itself (``shared_model.generation``).
    """
    model.eval()
    settings = settings or GenerationSettings(num_beams=num_beams)
    tok, texts = model.tokenizer, []
    options = settings.options(language)
    if settings.keep_language:
        options["suppress_tokens"] = other_language_tokens(tok, language)
    bank = bank.to(device)
    for start in range(0, len(image_emb), batch_size):
        condition = project_onto_bank(image_emb[start:start + batch_size].to(device), bank)
        start_ids = torch.full((len(condition),), tok.lang_ids[language], dtype=torch.long, device=device)
        with autocast(device):
            out = model.lm.generate(condition, start_ids, **options)
        for row in out.cpu().tolist():
            text = tok.decode(row[1:])
            texts.append(tidy_report(text, language) if settings.tidy else text)
    return texts


def report_metrics(references: list[str], hypotheses: list[str], language: str) -> dict:
    scores = score_reports(references, hypotheses, language)
    return {"bleu": {f"bleu{n}": scores[f"bleu{n}"] for n in range(1, 5)}, "rougeL": scores["rougeL"]}


def evaluate_model(model: M3FM, *, images: torch.Tensor, labels: dict[str, np.ndarray],
                   references: dict[str, tuple[list[int], list[str]]], bank_texts: list[str],
                   device: torch.device, num_beams: int = 1, languages: tuple[str, ...] = PROMPT_LANGUAGES,
                   reports: bool = True, groups: dict[str, set[int]] | None = None,
                   generation: GenerationSettings | None = None) -> dict:
    """The ``final`` block of results.json.

    ``images`` are the distinct test images (uint8), ``labels`` their CheXpert values per finding,
    ``references[lang]`` = (image row, reference report) pairs; reports are generated from the
    images through the memory bank of ``bank_texts`` (training reports) in every language.
    ``reports=False`` skips generation (AUC only: the cheap per-round check). ``groups`` names
    subsets of image rows (e.g. the test patients of each site) scored separately per language.
    ``generation`` decodes the reports (default: the standard settings with ``num_beams``).
    """
    image_emb = embed_images(model, images, device)
    result = zero_shot_auc(model, image_emb, labels, languages, device)
    result.update({"bleu": {}, "rougeL": {}, "examples": {}})
    if not reports:
        return result
    bank = embed_texts(model, bank_texts, device)
    generation = generation or GenerationSettings(num_beams=num_beams)
    result["generation"] = generation.to_dict()  # how the scored reports were decoded, beside the scores
    by_group: dict[str, dict[str, float]] = {}
    for lang, (rows, refs) in references.items():
        if not rows:
            continue
        hyps = generate_reports(model, image_emb[rows], bank, lang, device, settings=generation)
        scores = report_metrics(refs, hyps, lang)
        result["bleu"][lang], result["rougeL"][lang] = scores["bleu"], scores["rougeL"]
        result["examples"][lang] = [{"reference": r, "generated": h} for r, h in list(zip(refs, hyps))[:3]]
        for name, members in (groups or {}).items():
            picked = [i for i, row in enumerate(rows) if row in members]
            if picked:
                sub = report_metrics([refs[i] for i in picked], [hyps[i] for i in picked], lang)
                by_group.setdefault(name, {})[lang] = sub["bleu"]["bleu4"]
    if groups is not None:
        result["bleu4_by_group"] = by_group
    return result
