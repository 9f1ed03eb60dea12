"""``RUNDIR/MODEL_CARD.md`` and ``RUNDIR/model_card.json``: what a run's model is and what made it.

Written from what the run already records, never from patient data: ``results.json`` (config,
metrics, the paired-bootstrap intervals of its comparisons, each site's privacy statement), the
weight files (their sha256, and the tokenizer's from their header) and, where the researcher owns
the data (a simulation), ``sites.json`` and each virtual site's manifest. A deployment knows its
sites only from what they declared (record counts, languages, modalities; no patient count) and
stated (ε, δ). ``m3fed sim``, ``m3fed central`` and a deployed run's ServerApp write it after
``results.json``; ``m3fed card RUNDIR`` writes it again for an existing run. Importable without torch.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
from pathlib import Path

from client.errors import DataError
from server.model_card_text import render, use_and_limitations

SCHEMA = "m3fed.model_card/1"
CARD_MD, CARD_JSON = "MODEL_CARD.md", "model_card.json"
# The files a run writes (server.run_state): the selected model, and with adapters the one to use.
WEIGHTS, MERGED = "model.safetensors", "model-merged.safetensors"


def write_model_card(run_dir: str | Path) -> Path:
    """Write both files from ``run_dir``'s results.json (DataError: no readable results.json); returns the .md."""
    run_dir = Path(run_dir)
    card = build_card(run_dir, read_results(run_dir))
    _replace(run_dir / CARD_JSON, json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    _replace(run_dir / CARD_MD, render(card))
    return run_dir / CARD_MD


def read_results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    if not path.is_file():
        raise DataError(path, "not found: not an m3fed run directory (m3fed sim, central or run write one)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != "m3fed.results/1" or not isinstance(doc.get("config"), dict):
        raise DataError(path, "not an m3fed.results/1 file")
    return doc


def build_card(run_dir: Path, results: dict) -> dict:
    kind = ("pooled" if results.get("mode") == "central"
            else "simulation" if (run_dir / "sites.json").is_file() else "deployment")
    cfg = results["config"]
    card = {"schema": SCHEMA, "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "run": {"kind": kind, "mode": results.get("mode"), "run_dir": str(run_dir.resolve()),
                    "synthetic_data": _synthetic(setting(cfg, "data"))},
            "model": weights(run_dir, results), "start": start(cfg), "config": cfg}
    card["sites"] = sites(run_dir, results, kind, upto=card["model"]["round"])
    card["privacy"] = privacy(results, card["sites"], kind)
    card["metrics"] = metrics(results, kind)
    card["memorisation"] = memorisation(run_dir, card["model"])
    card.update(use_and_limitations(card, results))
    return card


def setting(cfg: dict, name: str):
    """A config value by its federated (kebab-case) or pooled (snake_case) name; None when unset."""
    aliases = {"init-checkpoint": "init"}
    for key in (name, name.replace("-", "_"), aliases.get(name, "")):
        if cfg.get(key) not in (None, ""):
            return cfg[key]
    return None


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def weights(run_dir: Path, results: dict) -> dict:
    """The weight files with their sha256 and role, the one to use, and the tokenizer from its header."""
    roles = {WEIGHTS: "the selected model" + (" (base and adapters)" if (run_dir / MERGED).is_file() else ""),
             MERGED: "the selected model with its adapters folded in: the one to use for inference"}
    files = [{"file": name, "sha256": sha256_of(run_dir / name), "bytes": (run_dir / name).stat().st_size,
              "role": role} for name, role in roles.items() if (run_dir / name).is_file()]
    use = next((f for f in files if f["file"] == MERGED), files[0] if files else None)
    meta = _header(run_dir / use["file"]) if use else {}
    return {"use": use["file"] if use else None, "use_sha256": use["sha256"] if use else None, "files": files,
            "preset": (meta.get("model_config") or {}).get("preset") or setting(results["config"], "preset"),
            "adapter": meta.get("adapter") or setting(results["config"], "adapter") or None,
            "round": meta.get("round", _header(run_dir / WEIGHTS).get("round")),  # a merged file's is its base's
            "selected": results.get("selected"),
            "tokenizer": {"file": meta.get("tokenizer_file"), "sha256": meta.get("tokenizer_sha256"),
                          "text_model": meta.get("text_model") or None}}


def _header(path: Path) -> dict:
    """The m3fed header of a safetensors file (``shared_model.checkpoint``), read without torch; {} if none."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return json.loads((handle.metadata() or {}).get("m3fed", "{}"))
    except (OSError, SafetensorError, json.JSONDecodeError):
        return {}


def start(cfg: dict) -> dict:
    """Where the weights started: --init, --vit-weights, --text-model, each with its sha256 when the file is here."""
    def named(path, *, folder: bool = False) -> dict | None:
        if not path:
            return None
        p = Path(str(path))
        if folder:  # a Hugging Face directory: its weight files (the tokenizer's hash is the model's, below)
            found = sorted(f for f in p.glob("*") if f.suffix in (".safetensors", ".bin")) if p.is_dir() else []
            return {"path": str(p), "weights": [{"file": f.name, "sha256": sha256_of(f)} for f in found],
                    **({} if p.is_dir() else {"note": "not found when the card was written"})}
        return ({"path": str(p), "sha256": sha256_of(p)} if p.is_file()
                else {"path": str(p), "sha256": None, "note": "not found when the card was written"})
    init, vit, text = setting(cfg, "init-checkpoint"), setting(cfg, "vit-weights"), setting(cfg, "text-model")
    if init:
        summary = f"the checkpoint {init}"
    elif vit or text:
        summary = " and ".join(s for s in (vit and f"image tower from {vit}", text and f"text tower from {text}") if s)
    else:
        summary = f"weights drawn from seed {setting(cfg, 'seed') or 0} (no pretrained start)"
    return {"summary": summary, "init": named(init), "vit_weights": named(vit), "text_model": named(text, folder=True)}


def sites(run_dir: Path, results: dict, kind: str, *, upto: int | None = None) -> list[dict]:
    """Per site: training records, test records, patients (where the run knows them), languages, modalities,
    and the rounds up to ``upto`` (the model's) its update went into."""
    if kind == "pooled":
        report = results.get("data_report") or {}
        split = report.get("by_split") or {}
        return [{"name": "pooled", "records": split.get("train"), "test_records": split.get("test"),
                 "patients": report.get("patients"), "languages": sorted(report.get("by_language") or {}),
                 "modalities": sorted(report.get("by_modality") or {}), "images": bool(report.get("images")),
                 "counted_from": "the pooled dataset's data report"}]
    names = list(results.get("sites") or [])
    if not names and kind == "simulation":  # a run that ended before its results named them
        names = json.loads((run_dir / "sites.json").read_text(encoding="utf-8")).get("sites", [])
    declared = results.get("declarations") or {}
    tested = (results.get("final") or {}).get("site_eval") or {}
    out = []
    for name in names:
        entry = {"name": name, **_contribution(results, name, upto)}
        manifest = run_dir / "sites" / name / "manifest.jsonl"
        if kind == "simulation" and manifest.is_file():
            entry.update(_manifest_counts(manifest))
        else:  # what the site declared before its first round: counts only, no patient leaves a site
            d = declared.get(name)
            entry.update({"records": d.get("examples-report-generation"), "image_records": d.get("examples-contrastive"),
                          "test_records": (tested.get(name) or {}).get("test_images"), "patients": None,
                          "languages": d.get("languages", []), "modalities": d.get("modalities", []),
                          "images": bool(d.get("images")), "counted_from": "the sites' declarations"}
                         if isinstance(d, dict) else
                         {"records": None, "patients": None, "languages": [], "modalities": [], "images": None,
                          "counted_from": None})
        out.append(entry)
    return out


def _manifest_counts(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [r for r in rows if r.get("split") == "train"]
    return {"records": len(train), "image_records": sum(1 for r in train if r.get("image")),
            "test_records": sum(1 for r in rows if r.get("split") == "test"),
            "patients": len({str(r.get("patient_id")) for r in rows}),
            "languages": sorted({r["language"] for r in rows if r.get("language")}),
            "modalities": sorted({r["modality"] for r in rows if r.get("image") and r.get("modality")}),
            "images": any(r.get("image") for r in rows), "counted_from": "the virtual sites' manifests"}


def _contribution(results: dict, name: str, upto: int | None) -> dict:
    """In how many rounds up to ``upto`` the site's update went into the average, and its first other
    status (why not, e.g. a budget spent)."""
    statuses = [(r.get("sites") or {}).get(name, {}) for r in results.get("rounds") or []
                if upto is None or r.get("round", 0) <= upto]
    ok = sum(1 for s in statuses if s.get("status") == "ok" and s.get("examples"))
    other = next((s["status"] for s in statuses if s.get("status") not in (None, "ok", "no data for this objective")),
                 None)
    return {"rounds_contributed": ok, **({"other_status": other} if other else {})}


def privacy(results: dict, site_entries: list[dict], kind: str) -> dict:
    """SecAgg+ on or off, site-level DP, and each site's privacy line: its statement, or "no DP"."""
    cfg = results["config"]
    if kind == "pooled":
        return {"secagg": None, "site_level_dp": None,
                "sites": {"pooled": {"dp": False, "line": "no DP (pooled training on data the researcher holds)"}}}
    statements = results.get("privacy") or {}
    lines = {}
    for entry in site_entries:
        name = entry["name"]
        s = statements.get(name)
        if isinstance(s, dict):
            lines[name] = _statement_line(s)
            continue
        stated = [(r["round"], r["sites"][name]["epsilon"]) for r in results.get("rounds") or []
                  if _finite((r.get("sites") or {}).get(name, {}).get("epsilon"))]
        if stated:
            lines[name] = {"dp": True, "epsilon": stated[-1][1], "delta": None,
                           "line": f"ε {stated[-1][1]:.3f} as the site reported it in round {stated[-1][0]}; its "
                                   "privacy statement (with δ) did not reach the server"}
        elif entry.get("counted_from") is None and not entry.get("rounds_contributed"):
            lines[name] = {"dp": None, "line": "took no part in training (nothing declared or stated)"}
        else:
            lines[name] = {"dp": False, "line": "no DP"}
    released = [r["site_dp"] for r in results.get("rounds") or [] if r.get("site_dp")]
    site_dp = ({"epsilon": released[-1].get("epsilon"), "delta": released[-1].get("delta"),
                "noise_multiplier": released[-1].get("noise_multiplier"),
                "clipping_norm": released[-1].get("clipping_norm"), "mechanism": released[-1].get("mechanism")}
               if released else None)
    return {"secagg": bool(cfg.get("secagg")), "site_level_dp": site_dp, "sites": lines}


def _statement_line(s: dict) -> dict:
    if s.get("verified") is False or not _finite(s.get("epsilon")):
        problems = "; ".join(map(str, s.get("problems") or [])) or "no ε stated"
        return {"dp": True, "epsilon": None, "delta": s.get("delta"), "verified": False,
                "line": f"DP policy, but its ledger did not verify: {problems[:200]}"}
    unit = s.get("unit") or "record"
    delta = f"δ {s['delta']:g}" if _finite(s.get("delta")) else "δ not stated"
    verified = s.get("verified") is True  # the site replayed and checked its ledger
    line = (f"ε {s['epsilon']:.3f}, {delta} ({unit}-level DP-SGD, {s.get('accountant', '?')} accountant, "
            f"ledger {'verified' if verified else 'verification not stated'}"
            + (f"; target ε {s['target_epsilon']:g}" if _finite(s.get("target_epsilon")) else "") + ")")
    return {"dp": True, "epsilon": s["epsilon"], "delta": s.get("delta"), "unit": unit,
            "accountant": s.get("accountant"), "target_epsilon": s.get("target_epsilon"), "verified": verified,
            "line": line}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metrics(results: dict, kind: str) -> dict:
    """The test metrics, the intervals the run computed (federated minus each baseline), and who scored them."""
    final = results.get("final") or {}
    base = results.get("baselines") or {}
    diff = base.get("auc_difference") or {}
    labels = {"pooled": "pooled", "best_single_site": f"best single site ({base.get('best_single_site')})"}
    intervals = [{"comparison": f"federated − {labels[key]}", "auc_difference": d["difference"], "ci95": d["ci95"],
                  "resamples": d.get("resamples")} for key, d in diff.items()
                 if key in labels and isinstance(d, dict) and d.get("ci95")]
    by_default = {"simulation": "the server, on the dataset's test split", "pooled": "the pooled run, on the test split",
                  "deployment": "the sites, on their own test patients"}
    return {"auc_macro": final.get("auc_macro"), "auc_per_label": final.get("auc_per_label") or {},
            "auc_macro_by_language": final.get("auc_macro_by_language") or {},
            "bleu4": {lang: (b or {}).get("bleu4") for lang, b in (final.get("bleu") or {}).items()},
            "rougeL": final.get("rougeL") or {}, "evaluated_by": final.get("evaluated_by") or by_default[kind],
            "site_eval": final.get("site_eval") or {}, "intervals": intervals,
            "interval_method": diff.get("method") if intervals else None,
            "baselines": {k: {"auc_macro": v.get("auc_macro")} for k, v in
                          (("pooled", base.get("pooled")), (labels["best_single_site"],
                           (base.get("single_sites") or {}).get(base.get("best_single_site"))))
                          if isinstance(v, dict)},
            "without_dp": results.get("non_private"), "test_data": results.get("data_report") or {}}


MEMORISATION_SCHEMA = "m3fed.memorisation/1"


def memorisation(run_dir: Path, model: dict) -> dict:
    """The memorisation audits in ``RUNDIR/memorisation*/`` (``m3fed audit memorisation``), without and
    with DP, in that order; ``audited`` False when there is none."""
    audits = []
    for path in sorted(run_dir.glob("memorisation*/memorisation.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("schema") != MEMORISATION_SCHEMA:
                raise ValueError(f"not an {MEMORISATION_SCHEMA} file")
            audits.append(_audit(path, doc, model))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            audits.append({"folder": path.parent.name, "problem": f"{path.name}: unreadable ({exc})"})
    audits.sort(key=lambda a: (a.get("dp") is True, a["folder"]))
    return {"audited": any("problem" not in a for a in audits), "audits": audits}


def _audit(path: Path, doc: dict, model: dict) -> dict:
    c, e, p = doc["canaries"], doc["exposure"], doc["training"].get("privacy")
    g = doc.get("regurgitation") or {}
    hashes = {f["sha256"] for f in model.get("files", [])}
    return {"folder": path.parent.name, "dp": p is not None,
            "epsilon": p and p["epsilon"], "delta": p and p["delta"], "accountant": p and p["accountant"],
            "unit": p and p["unit"], "model_sha256": doc["model"]["sha256"],
            "same_model": doc["model"]["sha256"] in hashes, "data": doc["data"]["path"],
            "epochs": doc["training"]["epochs"], "canaries": c["inserted"], "repeats": c["repeats"],
            "candidates": c["candidates"], "max_exposure": c["max_exposure"], "chance": e["chance"],
            "inserted_mean": e["inserted"]["mean"], "inserted_max": e["inserted"]["max"],
            "control_mean": e["control"]["mean"], "uniform_p": e["tests"]["uniform_p"],
            "control_p": e["tests"].get("control_p"), "extracted": e["inserted"]["extracted"],
            "generated": g.get("generated"), "verbatim_train": g.get("verbatim_train"),
            "verbatim_train_only": g.get("verbatim_train_only"), "train_only_8gram": g.get("train_only_8gram"),
            "secret": g.get("secret")}


def _synthetic(data) -> bool | None:
    """Whether the run's data is m3fed's synthetic dataset (None: the server does not know, a deployment)."""
    if not data:
        return None
    folder = Path(str(data))
    folder = folder if folder.is_dir() else folder.parent
    return (folder / "m3fed-synth.json").is_file()


def _replace(path: Path, text: str) -> None:
    """Written whole or not at all: a reader never sees half a card."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def add_card_command(sub) -> None:
    """``m3fed card RUNDIR``: the card again for a finished run (e.g. one from before cards, or fetched)."""
    p = sub.add_parser("card", help="write RUNDIR/MODEL_CARD.md and model_card.json from a finished run's records")
    p.add_argument("run_dir", metavar="RUNDIR", help="a run folder of m3fed sim, central or run (holds results.json)")
    p.set_defaults(func=_card_command)


def _card_command(args) -> int:
    run_dir = Path(args.run_dir)
    try:
        path = write_model_card(run_dir)
    except OSError as exc:
        raise DataError(run_dir, f"cannot write the card: {exc.strerror or exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited or truncated results.json
        raise DataError(run_dir / "results.json", f"not a finished run's results ({type(exc).__name__}: {exc})") from None
    print(f"wrote {path} and {path.with_name(CARD_JSON)}")
    return 0
