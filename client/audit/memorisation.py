"""What the report generator memorises at one site: Secret Sharer canaries and verbatim regurgitation.

The audit trains a copy of the model's report generator (MultiMedLM, text only) on the site's
training reports plus K canaries (``privacy.canaries``), each added as ``repeats`` text-only
training records of its own patient and study, with the code the site trains with: without a
policy ``client.app.site.local_update`` (the plain ``lm_epoch`` path); with ``--dp POLICY`` the
site's DP round ``client.app.site_privacy.private_round`` (plan from the policy, Opacus DP-SGD in
``privacy.dp.private_update``, a hash-chained ledger written before anything is read out of the
model). The policy's whole target ε is given to the audit's one round of ``epochs`` local epochs
(``planned_rounds: 1``; every other key as the site signed it), and the ε spent is replayed from
the audit's own ledger. A canary repeated r times is r units of privacy: DP bounds it by group
privacy (about r·ε), as it would bound a secret written into r of a site's reports.

Then, on the trained generator:

- exposure of each inserted and each control canary among ``alternatives`` random secrets of its
  space. The decoder is conditioned on the CLIP text embedding of the canary with its secret left
  out (what someone who knows the format but not the secret can compute), and a candidate's
  log-perplexity is the training loss of its whole text (teacher-forced, bits);
- extraction: greedy completion of the canary's known prefix (its host report and format, up to the
  secret) from the same condition, and whether the secret's digits come out;
- regurgitation (``privacy.regurgitation``) of reports generated for held-out test images (their
  text embeddings for a site without images) through a memory bank of the site's training reports,
  canaries included, as evaluation does.

The audit's figures are computed on the site's private data and are not covered by ε: they stay
with the privacy officer. The trained copy is discarded.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import warnings
from pathlib import Path

import torch

from client.app.site import local_update
from client.app.site_privacy import ReleasedUpdates, SitePrivacy, fingerprint, private_round
from client.audit.config import AuditConfig
from client.data.dataset import Examples, decode
from client.data.evaldata import bank_texts, evaluation_inputs
from client.data.sources import DataReport, Record, load_records
from client.errors import DataError
from client.inference.model_files import load_inference_model
from privacy.canaries import (DIGITS, FORMATS, SPACE, Canary, alternatives, canary_text, chance_exposure, chance_sd,
                              exposure,
                              extrapolated_exposure, make_canaries, rank_among, rank_tests)
from privacy.ledger import Ledger
from privacy.policy import PrivacyPolicy, load_policy
from privacy.regurgitation import regurgitation
from shared_model.device import autocast, resolve_device
from shared_model.evaluate import embed_images, embed_texts, generate_reports
from shared_model.generation import GenerationSettings
from shared_model.model import M3FM
from shared_model.objectives import TrainConfig

SCHEMA = "m3fed.memorisation/1"
RESULT, CONFIG, POLICY, LEDGER = "memorisation.json", "config.json", "privacy.yaml", "ledger.jsonl"
SITE, RUN_ID = "memorisation-audit", "memorisation-audit"
OBJECTIVE = "report-generation"
HOST_TOKENS = 48  # host reports at most this long: the canary must fit in max_report_len, and scoring is per token
BANK_SIZE = 2000  # as the sites' evaluation builds its bank (client.app.site.local_evaluation)
SCORE_BATCH = 64


def out_directory(cfg: AuditConfig) -> Path:
    """``cfg.out_dir()``, created; refused when it already holds an audit (its ledger is not reused)."""
    out = cfg.out_dir()
    for name in (RESULT, LEDGER):
        if (out / name).exists():
            raise DataError(out / name, "already holds an audit: remove the folder or give another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(out, f"--out: cannot create the folder ({exc.strerror or exc})") from None
    return out


def host_reports(train: list[Record], model: M3FM) -> dict[str, list[str]]:
    """Per canary language of the site: its distinct training reports short enough to carry a canary."""
    tok, limit = model.tokenizer, model.cfg.max_report_len - 2  # language token and end token
    hosts: dict[str, list[str]] = {}
    for language in sorted({r.language for r in train} & set(FORMATS)):
        texts = sorted({r.report for r in train if r.language == language})
        extra = len(tok.pieces([canary_text("", language, 0)])[0])
        lengths = tok.pieces(texts)
        fits = [t for t, p in zip(texts, lengths) if len(p) <= min(HOST_TOKENS, limit - extra)]
        hosts[language] = fits or [""]  # no report short enough: the canary sentence alone
    return hosts


def canary_records(canaries: list[Canary], repeats: int, modality: str) -> list[Record]:
    """Each canary as ``repeats`` text-only training records, each its own patient and study."""
    return [Record(patient_id=f"{c.name}-{j}", study_id=f"{c.name}-{j}", image=None, report=c.text,
                   language=c.language, split="train", modality=modality) for c in canaries for j in range(repeats)]


def text_examples(records: list[Record], image_size: int) -> Examples:
    """Training examples for report generation: the records, no image decoded (the objective reads text only)."""
    return Examples(list(records), torch.full((len(records),), -1, dtype=torch.long),
                    torch.zeros(0, 1, image_size, image_size, dtype=torch.uint8))


def train_generator(model: M3FM, examples: Examples, cfg: AuditConfig, policy: PrivacyPolicy | None, out: Path,
                    device: torch.device) -> dict:
    """``cfg.epochs`` report-generation epochs with the site's own code: plain, or the site's DP round."""
    train = TrainConfig(lm_lr=cfg.lm_lr, lm_batch_size=cfg.lm_batch_size)
    started = time.perf_counter()
    if policy is None:
        loss, n = local_update(model, examples, OBJECTIVE, train=train, epochs=cfg.epochs, seed=cfg.seed, device=device)
        return {"path": "plain: client.app.site.local_update (shared_model.objectives.lm_epoch)", "loss": loss,
                "examples": n, "seconds": time.perf_counter() - started, "privacy": None}
    audited = dataclasses.replace(policy, planned_rounds=1)  # the whole target for the audit's one round
    _write_policy(out / POLICY, audited)
    ledger = Ledger.open(out / LEDGER, dataset_fingerprint=fingerprint(examples), policy=audited, site=SITE)
    site = SitePrivacy(audited, ledger, SITE)
    released = ReleasedUpdates(out / "state")
    with warnings.catch_warnings():
        # torch, about Opacus' hooks on the decoder's first block, whose inputs (the frozen embeddings) need
        # no gradient: the per-sample gradients of its weights are still computed (privacy.dp).
        warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
        loss, n, eps = private_round(site, model, examples, OBJECTIVE, run_id=RUN_ID, round=1, train=train,
                                     epochs=cfg.epochs, seed=cfg.seed, device=device, released=released)
    released.forget(1)  # the audit's trained copy is not kept
    (entry,) = ledger.entries()
    privacy = {"epsilon": eps, "delta": audited.target_delta, "target_epsilon": audited.target_epsilon,
               "accountant": audited.accountant, "unit": audited.unit, "units": entry["n_units"],
               "noise_multiplier": entry["noise_multiplier"], "sample_rate": entry["sample_rate"],
               "steps": entry["steps"], "max_grad_norm": entry["max_grad_norm"], "layers": audited.report_layers,
               "policy": str(policy.source), "ledger": str(out / LEDGER),
               "reproduce": (f"m3fed privacy epsilon --sample-rate {entry['sample_rate']!r} --noise-multiplier "
                             f"{entry['noise_multiplier']!r} --steps {entry['steps']} --delta "
                             f"{audited.target_delta!r} --accountant {audited.accountant}"),
               "group_note": f"a canary repeated {cfg.repeats}x is {cfg.repeats} unit(s): group privacy applies"}
    return {"path": "DP-SGD: client.app.site_privacy.private_round (privacy.dp.private_update around lm_epoch)",
            "loss": loss, "examples": n, "seconds": time.perf_counter() - started, "privacy": privacy}


def _write_policy(path: Path, policy: PrivacyPolicy) -> None:
    import yaml

    header = (f"# The policy the audit trained under: {policy.source}, with planned_rounds 1 (the whole target\n"
              "# for the audit's one round of local epochs). Written by m3fed audit memorisation.\n")
    path.write_text(header + yaml.safe_dump(policy.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")


@torch.no_grad()
def log_perplexities(model: M3FM, canary: Canary, secrets: list[int], device: torch.device) -> list[float]:
    """Bits of each candidate's whole text under the generator, conditioned on the canary's blanked text."""
    tok, lm = model.tokenizer, model.lm
    condition = embed_texts(model, [canary.blanked], device)
    texts = [canary_text(canary.host, canary.language, s) for s in secrets]
    out = []
    for start in range(0, len(texts), SCORE_BATCH):
        chunk = texts[start:start + SCORE_BATCH]
        targets, _ = tok.encode_target(chunk, [canary.language] * len(chunk), model.cfg.max_report_len)
        targets = targets.to(device)
        with autocast(device):
            mean = lm.per_example_loss(condition.expand(len(chunk), -1), targets)
        counts = (targets[:, 1:] != lm.pad_id).sum(1)
        out += (mean.float() * counts / math.log(2)).cpu().tolist()
    return out


def canary_exposure(model: M3FM, canary: Canary, cfg: AuditConfig, device: torch.device) -> dict:
    others = alternatives(canary.secret, cfg.alternatives, seed=f"{cfg.seed}-{canary.name}")
    scores = log_perplexities(model, canary, [canary.secret, *others], device)
    rank = rank_among(scores[0], scores[1:])
    return {"name": canary.name, "language": canary.language, "secret": canary.digits, "inserted": canary.inserted,
            "log_perplexity_bits": scores[0], "alternatives_median_bits": sorted(scores[1:])[len(others) // 2],
            "rank": rank, "candidates": len(scores), "exposure": exposure(rank, len(scores)),
            "extrapolated_exposure": extrapolated_exposure(scores[0], scores[1:])}


@torch.no_grad()
def completions(model: M3FM, canaries: list[Canary], device: torch.device) -> list[str]:
    """Greedy completion of each canary's known prefix (host report and format, up to the secret) by as
    many tokens as a secret has, conditioned on its blanked text: the digits the decoder writes there."""
    tok, out = model.tokenizer, []
    for canary in canaries:
        condition = embed_texts(model, [canary.blanked], device)
        prefix = [tok.lang_ids[canary.language], *tok.pieces([canary.prefix])[0]]
        with autocast(device):
            ids = model.lm.complete(condition, torch.tensor([prefix], device=device), new_tokens=DIGITS)
        out.append(tok.decode(ids[0, len(prefix):].cpu().tolist()))
    return out


def generated_reports(model: M3FM, records: list[Record], bank: list[str], cfg: AuditConfig,
                      device: torch.device) -> tuple[list[tuple[str, str]], str]:
    """(language, report) generated for up to ``cfg.generate`` held-out test conditions per site language:
    test images through the bank, as evaluation does; a site without test images: its test reports'
    text embeddings through the same bank."""
    rng = random.Random(f"generate-{cfg.seed}")
    test = [r for r in records if r.split == "test" and r.language in FORMATS]
    with_image = [r for r in test if r.image]
    bank_emb = embed_texts(model, bank, device)
    out: list[tuple[str, str]] = []
    if with_image:
        picked = []
        for language in sorted({r.language for r in with_image}):
            rows = [r for r in with_image if r.language == language]
            picked += rng.sample(rows, min(cfg.generate, len(rows)))
        examples = decode(picked, model.cfg.image_size, DataReport(str(cfg.data)))  # an unreadable image is skipped
        inputs = evaluation_inputs(examples, ())
        emb = embed_images(model, inputs["images"], device)
        for language, (rows, _refs) in sorted(inputs["references"].items()):
            hyps = generate_reports(model, emb[rows], bank_emb, language, device, settings=GenerationSettings())
            out += [(language, h) for h in hyps]
        return out, "held-out test images, projected onto a bank of the site's training reports (canaries included)"
    for language in sorted({r.language for r in test}):
        refs = sorted({r.report for r in test if r.language == language})
        refs = rng.sample(refs, min(cfg.generate, len(refs)))
        hyps = generate_reports(model, embed_texts(model, refs, device), bank_emb, language, device,
                                settings=GenerationSettings())
        out += [(language, h) for h in hyps]
    return out, "held-out test reports' text embeddings (no test images), projected onto the training-report bank"


def summary(rows: list[dict]) -> dict:
    values = [r["exposure"] for r in rows]
    ext = [r["extrapolated_exposure"] for r in rows if r["extrapolated_exposure"] is not None]
    return {"mean": sum(values) / len(values), "max": max(values), "min": min(values),
            "extrapolated_mean": sum(ext) / len(ext) if ext else None, "extracted": sum(r["extracted"] for r in rows)}


def run_audit(cfg: AuditConfig, console=None) -> dict:
    """Train, score, write ``OUT/memorisation.json`` and ``OUT/config.json``; returns the result."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    policy = load_policy(cfg.dp) if cfg.dp else None  # a bad policy is refused before anything is read
    loaded = load_inference_model(cfg.model, device)
    records, report = load_records(cfg.data)
    train = [r for r in records if r.split == "train"]
    if not any(r.language in FORMATS for r in train):
        raise DataError(cfg.data, f"no training reports in a canary language ({', '.join(FORMATS)}): nothing to "
                                  "audit (see `m3fed data check`)")
    out = out_directory(cfg)
    model = loaded.model
    inserted, control = make_canaries(cfg.canaries, hosts=host_reports(train, model), seed=cfg.seed)
    modality = train[0].modality
    added = canary_records(inserted, cfg.repeats, modality)
    config = {**cfg.to_dict(), "out": str(out), "model_file": str(loaded.path), "weights_sha256": loaded.weights_sha256,
              "preset": model.cfg.preset, "objective": OBJECTIVE, "device": str(device)}
    (out / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    status = console.status if console is not None else _quiet
    with status(f"training the report generator: {len(train)} training records + {len(added)} canary records, "
                f"{cfg.epochs} epoch(s){' under ' + cfg.dp if cfg.dp else ''}"):
        training = train_generator(model, text_examples(train + added, model.cfg.image_size), cfg, policy, out, device)
    model.eval()
    with status(f"scoring {2 * cfg.canaries} canaries against {cfg.alternatives} alternatives each"):
        scoring_started = time.perf_counter()
        rows = [canary_exposure(model, c, cfg, device) for c in [*inserted, *control]]
        texts = completions(model, [*inserted, *control], device)
        for row, canary, text in zip(rows, [*inserted, *control], texts):
            row.update(extracted="".join(text.split()) == canary.digits, completion=text)
        scoring_seconds = time.perf_counter() - scoring_started
    ins, ctl = [r for r in rows if r["inserted"]], [r for r in rows if not r["inserted"]]
    candidates = cfg.alternatives + 1
    tests = rank_tests([r["rank"] for r in ins], candidates, [r["rank"] for r in ctl])
    regurg = None
    if cfg.generate:
        with status("generating reports for held-out conditions"):
            bank = bank_texts(train + added, BANK_SIZE, cfg.seed)
            generated, conditioned = generated_reports(model, records, bank, cfg, device)
            regurg = {**regurgitation(generated, train=[(r.language, r.report) for r in train + added],
                                      test=[(r.language, r.report) for r in records if r.split == "test"],
                                      secrets=[c.digits for c in inserted], control_secrets=[c.digits for c in control]),
                      "conditioned_on": conditioned, "examples": [{"language": l, "generated": t}
                                                                  for l, t in generated[:3]]}
    result = {
        "schema": SCHEMA, "config": config,
        "model": {"file": str(loaded.path), "sha256": loaded.weights_sha256, "preset": model.cfg.preset},
        "data": {"path": str(cfg.data), "training_records": len(train), "canary_records": len(added),
                 "languages": sorted({r.language for r in train}), "skipped": len(report.skipped)},
        "training": {**training, "epochs": cfg.epochs, "lm_lr": cfg.lm_lr, "lm_batch_size": cfg.lm_batch_size},
        "canaries": {"formats": FORMATS, "space": SPACE, "inserted": cfg.canaries, "control": cfg.canaries,
                     "repeats": cfg.repeats, "alternatives": cfg.alternatives, "candidates": candidates,
                     "max_exposure": math.log2(candidates), "chance_exposure": chance_exposure(candidates),
                     "condition": "CLIP text embedding of the canary with its secret left out",
                     "log_perplexity": "teacher-forced loss of the whole canary text, bits (lower: more likely)",
                     "extraction": f"greedy completion of the known prefix by {DIGITS} tokens equals the secret",
                     "per_canary": rows},
        "exposure": {"inserted": summary(ins), "control": summary(ctl), "chance": chance_exposure(candidates),
                     # a mean of K chance exposures lies within chance ± 2·sd/√K about 95 % of the time
                     "chance_band": 2 * chance_sd(candidates) / math.sqrt(cfg.canaries), "tests": tests},
        "regurgitation": regurg,
        "seconds": {"training": training["seconds"], "scoring": scoring_seconds,
                    "total": time.perf_counter() - started},
    }
    (out / RESULT).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


class _quiet:
    def __init__(self, _text: str) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None
