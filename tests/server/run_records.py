"""Run folders as m3fed writes them, without training: results.json, sites and a small checkpoint.

The model card and the final-model delivery read only these records, so their tests build them in
milliseconds instead of training a model (the end-to-end tests check the same on real runs).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

# What a record-level DP site's privacy statement holds (``privacy.statement``), cut to what the card reads.
STATEMENT = {"verified": True, "problems": [], "epsilon": 1.9572918, "delta": 0.001, "unit": "record",
             "accountant": "prv", "target_epsilon": 2.5, "tier": "reasonable"}


def default_tokenizer_sha256() -> str:
    from shared_model.tokenizer import DEFAULT_TOKENIZER, load_tokenizer

    return load_tokenizer(DEFAULT_TOKENIZER).sha256


def checkpoint(path: Path, *, tokenizer_sha256: str = "t" * 64, seed: int = 0, **extra) -> bytes:
    """A small safetensors file with an m3fed header (``shared_model.checkpoint``); returns its bytes."""
    meta = {"format": "m3fed.checkpoint/1", "model_config": {"preset": "tiny"}, "tokenizer_sha256": tokenizer_sha256,
            "tokenizer_file": "tokenizer-v1.json", "text_model": "", "adapter": "", **extra}
    weights = {"w": np.random.default_rng(seed).standard_normal(32).astype(np.float32)}
    save_file(weights, str(path), metadata={"m3fed": json.dumps(meta)})
    return path.read_bytes()


def _manifest(path: Path, rows: list[tuple[str, str, str, bool]], language: str) -> None:
    """rows: (patient, split, modality, has image)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"patient_id": p, "split": s, "modality": m, "language": language,
                                        "image": f"/data/{p}-{i}.jpg" if img else ""}) + "\n"
                            for i, (p, s, m, img) in enumerate(rows)), encoding="utf-8")


def simulation_run(run_dir: Path, *, dp_sites: tuple[str, ...] = ("site-1",), tokenizer_sha256: str = "t" * 64,
                   secagg: bool = False) -> dict:
    """Two image sites (en, zh) and a text-only one; the sites in ``dp_sites`` under a privacy policy."""
    data = run_dir.parent / f"{run_dir.name}-data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "m3fed-synth.json").write_text("{}")
    sites = ["site-1", "site-2", "site-3"]
    _manifest(run_dir / "sites" / "site-1" / "manifest.jsonl",
              [("p1", "train", "CXR", True), ("p1", "train", "CT", True), ("p2", "train", "CXR", True),
               ("p3", "test", "CXR", True)], "en")
    _manifest(run_dir / "sites" / "site-2" / "manifest.jsonl",
              [("p4", "train", "CXR", True), ("p5", "train", "CXR", True), ("p6", "test", "CXR", True),
               ("p7", "test", "CXR", True)], "zh")
    _manifest(run_dir / "sites" / "site-3" / "manifest.jsonl",
              [("p8", "train", "CXR", False), ("p9", "train", "CT", False)], "en")
    (run_dir / "sites.json").write_text(json.dumps({"sites": sites, "records": {"site-1": 3, "site-2": 2,
                                                                                 "site-3": 2}}))
    checkpoint(run_dir / "model.safetensors", tokenizer_sha256=tokenizer_sha256, round=2)
    rounds = [{"round": r, "sites": {s: {"status": "ok", "examples": 2, "epsilon": 0.5 * r if s in dp_sites else None}
                                     for s in sites}} for r in (1, 2)]
    results = {"schema": "m3fed.results/1", "mode": "federated",
               "config": {"preset": "tiny", "seed": 0, "data": str(data), "secagg": secagg, "strategy": "fedavg",
                          "init-checkpoint": "", "text-model": "", "vit-weights": "", "adapter": ""},
               "final": {"auc_macro": 0.71, "auc_per_label": {"Edema": 0.8, "Fracture": None},
                         "auc_macro_by_language": {"en": 0.7, "zh": 0.72},
                         "bleu": {"en": {"bleu4": 0.12}, "zh": {"bleu4": 0.09}}, "rougeL": {"en": 0.3, "zh": 0.25}},
               "rounds": rounds, "sites": sites, "selected": {"round": 2, "rule": "auto"},
               "data_report": {"records": 8, "images": 4, "patients": 3, "by_language": {"en": 4, "zh": 4}},
               "baselines": {"pooled": {"auc_macro": 0.75}, "best_single_site": "site-1",
                             "single_sites": {"site-1": {"auc_macro": 0.66}},
                             "auc_difference": {"method": "paired bootstrap over the test images",
                                                "pooled": {"difference": -0.04, "ci95": [-0.1, 0.02], "resamples": 1000},
                                                "best_single_site": {"difference": 0.05, "ci95": [0.01, 0.09],
                                                                     "resamples": 1000}}}}
    if dp_sites:
        results["privacy"] = {s: dict(STATEMENT) for s in dp_sites}
    (run_dir / "results.json").write_text(json.dumps(results))
    return results


def deployment_run(run_dir: Path, *, tokenizer_sha256: str = "t" * 64) -> dict:
    """site-1 (en, DP, statement sent with its evaluation), site-2 (zh, no DP), site-3 (text-only under DP: never
    asked to evaluate, so only its round ε reached the server) and site-x (refused the bundle)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint(run_dir / "model.safetensors", tokenizer_sha256=tokenizer_sha256, round=2)
    declared = {"site-1": {"languages": ["en"], "modalities": ["CT", "CXR"], "images": True,
                           "examples-contrastive": 38, "examples-report-generation": 38},
                "site-2": {"languages": ["zh"], "modalities": ["CXR"], "images": True,
                           "examples-contrastive": 47, "examples-report-generation": 47},
                "site-3": {"languages": ["en"], "modalities": [], "images": False,
                           "examples-contrastive": 0, "examples-report-generation": 30}}
    refused = "error: app bundle sha256:2baa is not approved by this site (site.yaml approved_apps); it was not run"
    rounds = [{"round": r, "sites": {"site-1": {"status": "ok", "examples": 38, "epsilon": 3.0 * r},
                                     "site-2": {"status": "ok", "examples": 47, "epsilon": None},
                                     "site-3": {"status": "ok" if r == 2 else "no data for this objective",
                                                "examples": 30 if r == 2 else 0, "epsilon": 5.071 if r == 2 else 0.0},
                                     "site-x": {"status": refused, "examples": 0, "epsilon": None}}}
              for r in (1, 2)]
    results = {"schema": "m3fed.results/1", "mode": "federated",
               "config": {"preset": "tiny", "seed": 0, "data": "", "secagg": True, "run-dir": str(run_dir)},
               "final": {"auc_macro": 0.46, "bleu": {"en": {"bleu4": 0.1}, "zh": {"bleu4": 0.2}},
                         "evaluated_by": "2 site(s) on their own test patients",
                         "site_eval": {"site-1": {"status": "ok", "test_images": 10, "auc_macro": 0.57, "bleu4": 0.1},
                                       "site-2": {"status": "ok", "test_images": 7, "auc_macro": 0.31, "bleu4": 0.2},
                                       "site-3": {"status": "not asked: the site declared no images",
                                                  "test_images": 0},
                                       "site-x": {"status": refused}}},
               "rounds": rounds, "sites": ["site-1", "site-2", "site-3", "site-x"], "declarations": declared,
               "selected": {"round": 2}, "data_report": {}, "privacy": {"site-1": dict(STATEMENT, epsilon=7.4851)}}
    (run_dir / "results.json").write_text(json.dumps(results))
    return results


def central_run(run_dir: Path) -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint(run_dir / "model.safetensors")
    results = {"schema": "m3fed.results/1", "mode": "central",
               "config": {"preset": "tiny", "seed": 0, "data": "", "init": None, "text_model": None},
               "final": {"auc_macro": 0.59, "bleu": {"en": {"bleu4": 0.01}}, "rougeL": {"en": 0.18}}, "rounds": [],
               "data_report": {"records": 736, "images": 368, "patients": 120,
                               "by_split": {"train": 518, "validate": 100, "test": 118},
                               "by_language": {"en": 368, "zh": 368}, "by_modality": {"CXR": 588, "CT": 148}}}
    (run_dir / "results.json").write_text(json.dumps(results))
    return results
