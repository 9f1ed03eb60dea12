"""The realistic protocol (issue G), side by side in one run: a public start, then adapter federation.

1. A public cohort (``m3fed synth --style public``: other patients, another acquisition, another
   seed) and a private MIMIC-shaped cohort for 4 sites (Dirichlet 0.5 label skew, EN/ZH/EN/ZH).
2. ``m3fed central`` on the public cohort writes the start checkpoint.
3. From that start, ``--adapter lora:R`` (peft LoRA + heads on the frozen start), on the same
   private sites: the federation with its pooled and single-site baselines (same start, same
   adapters, same schedule, each arm selected on the validate split by the same rule (issue M);
   paired-bootstrap intervals of the AUC differences); the same
   federation with DP-SGD at every site (sample level, patient unit, ε = 8, δ = 1e-5); and with
   SecAgg+. The start alone is the federation's round-0 evaluation on the private test split.
4. Bytes a site sends per round, against the full model's fp32 size: adapters, and full-model
   federation with ``--update-dtype fp32 | fp16 | int8`` (one round each, on the public cohort).

    python bench/realistic_protocol.py [--patients 2900] [--out DIR]   # prints and writes one JSON file

Goals (issue G): federated ≥ pooled − 0.02 and ≥ best single site + 0.03 macro AUC, federated >
start; DP at ε = 8 costs ≤ 0.03 AUC; adapter bytes up ≤ 0.05 × the full fp32 model, fp16 ≤ 0.5×,
int8 ≤ 0.26×; SecAgg+/plain round time ≤ 1.1; DP/plain ≤ 1.2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import yaml

from shared_model.checkpoint import ModelSource
from shared_model.model import parameter_counts
from sim.central import run_central
from sim.central_config import CentralConfig
from sim.simulate import SimConfig, run_simulation
from sim.synth import generate

POLICY = {"unit": "patient", "target_epsilon": 8.0, "target_delta": 1e-5, "max_grad_norm": 1.0,
          "noise_multiplier": "calibrate", "accountant": "prv", "batch_size": 64, "planned_rounds": 12,
          "contrastive_layers": "all", "report_layers": "all"}


def _timed(label: str, fn):
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.0f} s", flush=True)
    return result, seconds


def _round_seconds(doc: dict) -> float:
    return statistics.median(r["seconds"] for r in doc["rounds"] if r.get("seconds"))


def _max_bytes_up(doc: dict) -> int:
    return max((s["bytes_up"] for r in doc["rounds"] for s in r["sites"].values()), default=0)


def _selected_rounds(doc: dict) -> dict:
    """The round each arm was selected at on the validate split (issue M): every arm by the same rule."""
    base = doc.get("baselines") or {}
    arms = {"federated": doc.get("selected"), "pooled": (base.get("pooled") or {}).get("selected"),
            **{site: m.get("selected") for site, m in (base.get("single_sites") or {}).items()}}
    return {arm: [(s["objective"], s["round"], s["value"]) for s in (sel or {}).get("stages", [])]
            for arm, sel in arms.items() if sel}


def _arm(label: str, cfg: SimConfig, collect: bool) -> tuple[dict, float]:
    """Run one arm, or (``collect``) read the results an earlier run of it left in its folder."""
    if not collect:
        return _timed(label, lambda: run_simulation(cfg))
    doc = json.loads((Path(cfg.out) / "results.json").read_text(encoding="utf-8"))
    base = doc.get("baselines") or {}
    seconds = doc["seconds"]["total"] + sum(m.get("seconds") or 0 for m in [base.get("pooled") or {},
                                                                          *(base.get("single_sites") or {}).values()])
    print(f"{label}: collected from {cfg.out} ({seconds:.0f} s)", flush=True)
    return doc, seconds


def _records(out: Path) -> dict:
    return json.loads((out / "sites.json").read_text())["records"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2900,
                        help="private cohort (4 sites): 2900 gives 1,553-1,673 training records per site (2600: 1,373-1,513)")
    parser.add_argument("--public-patients", type=int, default=1200)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--adapter", default="lora:8")
    parser.add_argument("--lr", type=float, default=3e-3, help="the sites' learning rate (adapters and heads)")
    parser.add_argument("--start-epochs", type=int, default=20, help="contrastive epochs of the public start")
    parser.add_argument("--out", default="runs/realistic-protocol")
    parser.add_argument("--parts", default="start,federated,dp,secagg,bytes")
    parser.add_argument("--patience", type=int, default=0, help="early stopping of every arm (issue M; 0: off)")
    parser.add_argument("--dp-layers", default=POLICY["contrastive_layers"], choices=("all", "top"),
                        help="what DP rounds train: every adapter, or the top blocks' adapters and the heads")
    parser.add_argument("--dp-batch", type=int, default=POLICY["batch_size"], help="DP's expected batch size")
    parser.add_argument("--collect", action="store_true",
                        help="read the arms already in --out (their results.json) instead of running them")
    args = parser.parse_args(argv)
    parts, out = set(args.parts.split(",")), Path(args.out)
    result: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
                    "settings": vars(args), "policy": POLICY}

    private, public = out / "private-data", out / "public-data"
    if not (private / "m3fed-synth.json").is_file():
        _timed("private cohort", lambda: generate(private, patients=args.patients, seed=0))
    if not (public / "m3fed-synth.json").is_file():
        _timed("public cohort", lambda: generate(public, patients=args.public_patients, seed=1000, style="public"))

    start = out / "start" / "model.safetensors"
    if "start" in parts or not start.is_file():
        _, result["start_seconds"] = _timed("public start (m3fed central)", lambda: run_central(
            CentralConfig(data=str(public), out=str(out / "start"), contrastive_epochs=args.start_epochs, lm_epochs=5)))
    full_model = ModelSource(init=str(start)).initial(seed=0)
    result["full_model_fp32_bytes"] = 4 * parameter_counts(full_model)["total"]

    cfg = SimConfig(data=str(private), out=str(out / "federated"), sites=4, rounds=args.rounds,
                    partition="dirichlet:0.5", languages=("en", "zh", "en", "zh"), text_only_sites=0,
                    init=str(start), adapter=args.adapter, lr=args.lr, seed=0, timeout=6 * 3600,
                    patience=args.patience)
    arms = {}
    if "federated" in parts:
        doc, seconds = _arm("federated + pooled + single sites", cfg, args.collect)
        arms["federated"] = doc
        base = doc["baselines"]
        result["federated"] = {
            "records_per_site": _records(out / "federated"), "start_auc": doc["initial"]["auc_macro"],
            "auc": doc["final"]["auc_macro"], "bleu4": {k: v["bleu4"] for k, v in doc["final"]["bleu"].items()},
            "pooled": base["pooled"], "single_sites": base["single_sites"], "best_single_site": base["best_single_site"],
            "auc_difference": base.get("auc_difference"), "selected": _selected_rounds(doc),
            "round_seconds": _round_seconds(doc),
            "max_bytes_up": _max_bytes_up(doc), "seconds": seconds}
    if "dp" in parts:
        policy = out / "eps8.yaml"
        result["policy"] = {**POLICY, "contrastive_layers": args.dp_layers, "report_layers": args.dp_layers,
                            "batch_size": args.dp_batch}
        policy.write_text(yaml.safe_dump(result["policy"]))
        doc, seconds = _arm("federated, DP at every site",
                            dataclasses.replace(cfg, out=str(out / "dp"), dp=str(policy), compare=False), args.collect)
        result["dp"] = {"auc": doc["final"]["auc_macro"], "selected": _selected_rounds(doc), "bleu4": {k: v["bleu4"] for k, v in doc["final"]["bleu"].items()},
                        "epsilon": {s: st.get("epsilon") for s, st in (doc.get("privacy") or {}).items()},
                        "round_seconds": _round_seconds(doc), "seconds": seconds}
    if "secagg" in parts:
        doc, seconds = _arm("federated, SecAgg+",
                            dataclasses.replace(cfg, out=str(out / "secagg"), secagg=True, compare=False), args.collect)
        result["secagg"] = {"auc": doc["final"]["auc_macro"], "round_seconds": _round_seconds(doc),
                            "max_bytes_up": _max_bytes_up(doc), "seconds": seconds}
    if "bytes" in parts:  # full-model federation, one round per update dtype
        result["update_dtype"] = {}
        for dtype in ("fp32", "fp16", "int8"):
            doc, _ = _timed(f"full model, {dtype} updates", lambda: run_simulation(SimConfig(
                data=str(public), out=str(out / f"bytes-{dtype}"), sites=2, rounds=1, local_epochs=1,
                schedule="contrastive", text_only_sites=0, init=str(start), update_dtype=dtype, compare=False)))
            result["update_dtype"][dtype] = {"max_bytes_up": _max_bytes_up(doc), "auc": doc["final"]["auc_macro"]}
    _ratios(result)
    (out / "realistic_protocol.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result.get("goals", {}), indent=2))
    print(f"written: {out / 'realistic_protocol.json'}")
    return 0


def _ratios(result: dict) -> None:
    """Each goal's measured value beside its target."""
    goals, full = {}, result["full_model_fp32_bytes"]
    fed = result.get("federated")
    if fed:
        best = fed["single_sites"].get(fed["best_single_site"] or "", {}).get("auc_macro")
        goals["fed_minus_pooled"] = {"value": fed["auc"] - fed["pooled"]["auc_macro"], "goal": ">= -0.02"}
        if best is not None:
            goals["fed_minus_best_single"] = {"value": fed["auc"] - best, "goal": ">= 0.03"}
        goals["fed_minus_start"] = {"value": fed["auc"] - fed["start_auc"], "goal": "> 0"}
        goals["adapter_bytes_up_over_full_fp32"] = {"value": fed["max_bytes_up"] / full, "goal": "<= 0.05"}
        if "dp" in result:
            goals["dp_cost_auc"] = {"value": fed["auc"] - result["dp"]["auc"], "goal": "<= 0.03"}
            goals["dp_over_plain_round_seconds"] = {"value": result["dp"]["round_seconds"] / fed["round_seconds"],
                                                    "goal": "<= 1.2 (per step; here per round, 4 sites)"}
        if "secagg" in result:
            goals["secagg_over_plain_round_seconds"] = {"value": result["secagg"]["round_seconds"] / fed["round_seconds"],
                                                        "goal": "<= 1.1 (at 10 sites; here 4)"}
    sent = result.get("update_dtype", {})
    for dtype, limit in (("fp16", 0.5), ("int8", 0.26)):
        if dtype in sent:
            goals[f"{dtype}_bytes_up_over_full_fp32"] = {"value": sent[dtype]["max_bytes_up"] / full, "goal": f"<= {limit}"}
            if "fp32" in sent:  # the same round's update sent as fp32: the compression alone
                goals[f"{dtype}_bytes_up_over_fp32_update"] = {
                    "value": sent[dtype]["max_bytes_up"] / sent["fp32"]["max_bytes_up"], "goal": f"<= {limit}"}
    result["goals"] = goals


if __name__ == "__main__":
    raise SystemExit(main())
