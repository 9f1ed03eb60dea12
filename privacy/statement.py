"""The privacy statement a site's privacy officer signs: built from the ledger, never from a run's memory.

Follows "How to DP-fy ML" (arXiv 2303.00654) and TF-Privacy's ``compute_dp_sgd_privacy_statement``:
the guarantee and its neighbouring relation, the unit (plus a group bound for patients with
several studies, from the ``max_records_per_patient`` the site enforces on its data), the
accountant and version, the composition, a tier, and what ε does not cover.
"""
from __future__ import annotations

import math

from privacy import accounting
from privacy.ledger import Ledger, LedgerError, verify_ledger
from privacy.policy import PrivacyPolicy

DP_FLAVOUR = "(ε, δ)-DP, add/remove-one neighbouring"
# What one unit is (privacy.sampling.privacy_units): a record is a study, whatever its image count.
UNIT_MEANING = {
    "record": "one study: its report, all its images and translations",
    "patient": "one patient: all their studies",
}
# How privacy.sampling.cap_studies_per_patient enforces max_records_per_patient before training.
CAP_RULE = "studies beyond the bound are dropped before training; each patient keeps its lowest study ids"
# Named in every statement: in-batch negatives would couple examples, so DP rounds use this loss (dp_losses).
MECHANISM = {
    "training": "DP-SGD (Opacus per-sample gradients, clipping to C, Gaussian noise σ·C per step, Poisson sampling)",
    "contrastive_loss": "public-negative InfoNCE: each image-report pair is contrasted only with a frozen, "
                        "gradient-free embedding of public finding phrases (no other private example), so one "
                        "example's term, and its clipped gradient, depend on that example alone",
    "report_generation_loss": "per-example token cross-entropy (decomposes over examples)",
}
RELEASE_NOTES = {
    "num-examples": "num-examples sent with each update (no noise; reveals the exact N_k)",
    "train-loss": "train-loss sent with each update (computed on private data, no noise)",
    "eval-metrics": "evaluation metrics on the site's private data (no noise)",
}


def tier(epsilon: float) -> str:
    """Coarse reading of ε used in DP-fy ML: strong ≤ 1, reasonable ≤ 10, weak above."""
    return "strong" if epsilon <= 1 else "reasonable" if epsilon <= 10 else "weak"


def group_bound(epsilon: float, delta: float, k: int) -> dict:
    """(kε, k·e^{(k−1)ε}·δ) for a patient with up to k studies; δ computed in logs to avoid overflow."""
    log_delta = math.log(k) + (k - 1) * epsilon + math.log(delta)
    return {"max_records_per_patient": k, "epsilon": k * epsilon,
            "delta": 1.0 if log_delta >= 0 else math.exp(log_delta), "vacuous": log_delta >= 0}


def not_covered(policy: PrivacyPolicy) -> list[str]:
    """What ε does not protect (privacy.md §5); listed in every statement."""
    items = [f"released per the policy without DP: {RELEASE_NOTES[r]}" for r in policy.release]
    items += [
        "the exact dataset size N_k (neighbouring datasets differ by one unit; num-examples and q reveal it)",
        "evaluation on private data" + (" (its metrics leave the site)" if "eval-metrics" in policy.release
                                        else ", if its results are used to pick models"),
        "hyperparameter tuning on private data (arXiv 2110.03620)",
        "the site's participation as a whole: this is record/patient-level DP, not site-level (client-level) DP "
        "(that is a separate, server-side option: --site-dp, accounted by the server, see README)",
        "round metadata sent in clear with every update, also under secure aggregation (SecAgg+ hides only "
        "the update): site index, example count, seconds, bytes, ε spent so far, a refusal's reason",
        "the site's declaration before its first round, in clear: its report languages, image modalities, "
        "whether it has images, which objectives it can train and its number of training examples for each "
        "(no records)",
        "the MultiMedLM memory bank, unless built from non-private text",
        "secure RNG not used: Opacus secure_mode needs torchcsprng (unmaintained since 0.2.1, 2021); "
        "noise comes from torch's default generator (floating-point attacks, arXiv 2107.10138)",
    ]
    if policy.unit == "record" and policy.max_records_per_patient is None:
        items.append(f"patients with several studies: the unit is one study and no max_records_per_patient is "
                     f"set, so no bound per patient ({policy.patient_id_field}) is given")
    return items


def privacy_statement(ledger: Ledger, *, dropped: dict | None = None) -> dict:
    """The statement as a JSON-ready dict; refused for a ledger that fails verification.

    ``dropped``: what enforcing ``max_records_per_patient`` removed from the site's data
    (``StudyCap.to_dict()``), when the caller has the data; the ledger does not hold it.
    """
    problems = verify_ledger(ledger.path)  # replays ε entry by entry: a statement never trusts stored figures
    if problems:
        raise LedgerError(f"{ledger.path}: fails verification, no statement can be made from it "
                          f"({len(problems)} problem(s), first: {problems[0]}); see m3fed privacy verify")
    policy, entries = ledger.policy, ledger.entries()
    eps, delta = ledger.epsilon(), policy.target_delta
    segments: list[dict] = []
    for e in entries:  # one row per run of rounds with the same (q, σ, C)
        key = {"sample_rate": e["sample_rate"], "noise_multiplier": e["noise_multiplier"],
               "max_grad_norm": e["max_grad_norm"]}
        if segments and all(segments[-1][k] == v for k, v in key.items()):
            segments[-1]["rounds"] += 1
            segments[-1]["steps"] += e["steps"]
        else:
            segments.append({"rounds": 1, "steps": e["steps"], **key})
    k = policy.max_records_per_patient
    return {
        "site": ledger.header["site"],
        "dataset_fingerprint": ledger.header["dataset_fingerprint"],
        "dp_flavour": DP_FLAVOUR,
        "unit": policy.unit,
        "unit_meaning": UNIT_MEANING[policy.unit],
        "patient_id_field": policy.patient_id_field,
        "max_records_per_patient": (None if policy.unit != "record" or not k else
                                    {"value": k, "counts": "studies per patient", "enforced": CAP_RULE,
                                     "dropped": dropped}),
        "epsilon": eps,
        "delta": delta,
        "target_epsilon": policy.target_epsilon,
        "tier": tier(eps),
        "group_privacy": group_bound(eps, delta, k) if policy.unit == "record" and k else None,
        "accountant": policy.accountant,
        "accountant_version": accounting.accountant_version(policy.accountant),
        "recorded_with": sorted({e["accountant_version"] for e in entries}),
        "sampling": "Poisson (required by the policy)",
        "mechanism": MECHANISM,
        "composition": {"rounds": len(entries), "steps": sum(e["steps"] for e in entries),
                        "runs": sorted({e["run_id"] for e in entries}), "segments": segments},
        "released_besides_update": list(policy.release),
        "not_covered": not_covered(policy),
        "audit": None,  # a canary audit only ever gives a lower bound; none is attached here
        "ledger": {"path": str(ledger.path), "entries": len(entries), "verified": True},
    }


def render_markdown(s: dict) -> str:
    """The statement for people: one claim sentence, the composition table, exclusions, ledger status."""
    who = s.get("unit_meaning") or UNIT_MEANING[s["unit"]]
    lines = [f"# Privacy statement: site {s['site']}", "",
             f"Model updates released by site **{s['site']}** satisfy **(ε = {s['epsilon']:.3f}, "
             f"δ = {s['delta']:.3g})-DP** ({s['dp_flavour']}); the unit of privacy is {who}. "
             f"Tier: **{s['tier']}** (target ε = {s['target_epsilon']:g}).", ""]
    g, d = s["group_privacy"], (s.get("max_records_per_patient") or {}).get("dropped")
    if g:
        lines += [f"At most {g['max_records_per_patient']} studies per patient are trained on ({CAP_RULE}). "
                  f"Group privacy for one patient: (ε = {g['epsilon']:.3f}, δ = {g['delta']:.3g})"
                  + (" - **vacuous** (δ ≥ 1)." if g["vacuous"] else "."), "",
                  f"Dropped to enforce it: {d['studies_dropped']} studies ({d['rows_dropped']} rows) of "
                  f"{d['patients_over']} patients." if d else "Dropped to enforce it: not known to this statement "
                  "(the ledger does not record it).", ""]
    c = s["composition"]
    lines += [f"Accountant: `{s['accountant']}` ({s['accountant_version']}); sampling: {s['sampling']}.", "",
              "Mechanism: " + s["mechanism"]["training"] + ". Contrastive rounds: "
              + s["mechanism"]["contrastive_loss"] + ".", "",
              f"## Composition: {c['rounds']} rounds, {c['steps']} steps, runs {', '.join(c['runs']) or '-'}", ""]
    if c["segments"]:
        lines += ["| rounds | steps | q | σ | C |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {x['rounds']} | {x['steps']} | {x['sample_rate']:.6g} | {x['noise_multiplier']:.6g} | "
                  f"{x['max_grad_norm']:.6g} |" for x in c["segments"]]
    else:
        lines.append("No round has been released yet.")
    lines += ["", "## Not covered by this guarantee", ""] + [f"- {item}" for item in s["not_covered"]]
    lines += ["", "No empirical audit is attached (a canary audit gives a lower bound on ε only).", "",
              "## Ledger", ""]
    lines.append(f"`{s['ledger']['path']}`: {s['ledger']['entries']} entries; hash chain verified and ε "
                 "replayed from them.")
    return "\n".join(lines) + "\n"
