"""``RUNDIR/report.md`` and its plots, written from a finished run's ``results.json``."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server
import matplotlib.pyplot as plt  # noqa: E402


def _f(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def comparison_rows(results: dict) -> list[tuple[str, dict]]:
    """(label, metrics) for federated, pooled and the best single site, when present.

    A baseline's metrics carry ``auc_difference`` (federated minus it, with its interval) when known.
    """
    train_seconds = sum(r.get("seconds") or 0 for r in results["rounds"])
    rows = [("federated" + _at(results.get("selected")), {**results["final"], "seconds": train_seconds})]
    base = results.get("baselines") or {}
    diff = base.get("auc_difference") or {}
    if "pooled" in base:
        rows.append(("pooled (same schedule)" + _at(base["pooled"].get("selected")),
                     {**base["pooled"], "auc_difference": diff.get("pooled")}))
    best = base.get("best_single_site")
    if best:
        rows.append((f"best single site ({best})" + _at(base["single_sites"][best].get("selected")),
                     {**base["single_sites"][best], "auc_difference": diff.get("best_single_site")}))
    return rows


def _at(selected: dict | None) -> str:
    """', round 7', or ', rounds 6 / 12' (each stage's): which rounds a model was selected at on the validate split."""
    if not selected or selected.get("round") is None or selected.get("rule") == "last":
        return ""
    rounds = [str(s["round"]) for s in selected.get("stages", [])] or [str(selected["round"])]
    return f", round{'s' if len(rounds) > 1 else ''} {' / '.join(rounds)}"


def difference_text(metrics: dict) -> str:
    """'+0.043 (+0.017 to +0.069)': federated minus this model's macro AUC, then its 95% interval."""
    d = metrics.get("auc_difference")
    if not d or d.get("difference") is None:
        return "—"
    low, high = d["ci95"]
    return f"{d['difference']:+.3f} ({low:+.3f} to {high:+.3f})"


def bleu_of(metrics: dict, lang: str):
    value = (metrics.get("bleu") or {}).get(lang)
    return value["bleu4"] if isinstance(value, dict) else value


def plot_metric_per_round(results: dict, path: Path) -> None:
    """Test and validate AUC per round, validate BLEU-4 of report-generation rounds, the selected round marked."""
    rounds = [r for r in results["rounds"] if not r.get("skipped")]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    xs = [0] + [r["round"] for r in rounds]
    ax.plot(xs, [results.get("initial", {}).get("auc_macro")] + [r["auc_macro"] for r in rounds], "o-",
            label="federated, test AUC")
    val = [(r["round"], (r.get("validation") or {}).get("auc_macro")) for r in rounds]
    if any(v is not None for _, v in val):
        ax.plot([x for x, v in val if v is not None], [v for _, v in val if v is not None], "s--",
                label="federated, validate AUC")
    for label, metrics in comparison_rows(results)[1:]:
        ax.axhline(metrics["auc_macro"], linestyle="--", color="grey" if "single" in label else "black",
                   label=f"{label}, test")
    bleu = [(r["round"], (r.get("validation") or {}).get("bleu4")) for r in rounds]
    twin = None
    if any(v is not None for _, v in bleu):
        twin = ax.twinx()
        twin.plot([x for x, v in bleu if v is not None], [v for _, v in bleu if v is not None], "^:",
                  color="tab:green", label="federated, validate BLEU-4")
        twin.set_ylabel("BLEU-4 (validate)")
    chosen = results.get("selected") or {}
    if chosen.get("rule") not in (None, "last"):  # each stage's selected round, on the curve it was chosen by
        for stage in chosen.get("stages", []):
            axis = twin if stage["metric"] == "bleu4" and twin is not None else ax
            if stage.get("value") is not None:
                axis.plot([stage["round"]], [stage["value"]], "*", color="tab:red", markersize=14, zorder=5,
                          label=f"selected: round {stage['round']} ({stage['objective']})")
    handles = [h for a in (ax, twin) if a is not None for h in a.get_legend_handles_labels()[0]]
    labels = [t for a in (ax, twin) if a is not None for t in a.get_legend_handles_labels()[1]]
    ax.set(xlabel="round", ylabel="zero-shot macro AUC", title="Global model per round")
    ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def selection_section(results: dict) -> list[str]:
    """Which round each model is, chosen on the validate split (never on test), and why."""
    chosen = results.get("selected")
    if not chosen:
        return []
    if chosen.get("rule") == "last":
        return ["", "## Model selection", "", "Off (`select: last`): every model is its last round."]
    lines = ["", "## Model selection (validate split)", "",
             f"Each stage keeps its best round on the validate split (macro AUC for contrastive rounds, BLEU-4 "
             f"for report generation; rule `{chosen['rule']}`, patience {chosen.get('patience') or 'off'}); the "
             "test metrics above are the selected models'.", "", "| model | stage | metric | round | validate |",
             "|---|---|---|---|---|"]
    models = [("federated", chosen)]
    base = results.get("baselines") or {}
    if (base.get("pooled") or {}).get("selected"):
        models.append(("pooled", base["pooled"]["selected"]))
    for site, m in sorted((base.get("single_sites") or {}).items()):
        if m.get("selected"):
            models.append((site, m["selected"]))
    for label, doc in models:
        for stage in doc.get("stages", []):
            stopped = f" (stopped after {stage['stopped_after']})" if stage.get("stopped_after") else ""
            lines.append(f"| {label} | {stage['stage']} {stage['objective']} | {stage['metric']} | "
                         f"{stage.get('round')}{stopped} | {_f(stage.get('value'))} |")
    if results.get("early_stopped"):
        lines += ["", f"Early stopping ended the run: {results['early_stopped']}."]
    return lines


def plot_site_contribution(results: dict, path: Path) -> None:
    """Examples each site contributed to each round's average (its weight), stacked."""
    rounds = results["rounds"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bottom = [0] * len(rounds)
    for site in results.get("sites", []):
        counts = [r["sites"].get(site, {}).get("examples", 0) or 0 for r in rounds]
        ax.bar([r["round"] for r in rounds], counts, bottom=bottom, label=site)
        bottom = [b + c for b, c in zip(bottom, counts)]
    ax.set(xlabel="round", ylabel="examples in the average", title="Per-site contribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def privacy_section(results: dict) -> list[str]:
    """ε per site per round (from the sites' replies) and each site's statement."""
    statements = results.get("privacy")
    if not statements:
        return []
    sites = sorted(statements)
    lines = ["", "## Differential privacy (each site's own policy and ledger)", "",
             "| site | ε (replayed from ledger) | δ | unit | accountant | tier | ledger verified |", "|---|---|---|---|---|---|---|"]
    for site in sites:
        s = statements[site]
        lines.append(f"| {site} | {_f(s.get('epsilon'))} | {s.get('delta', '—')} | {s.get('unit', '—')} | "
                     f"{s.get('accountant', '—')} | {s.get('tier', '—')} | {'yes' if s['verified'] else 'NO'} |")
    plain = [site for site in results.get("sites", []) if site not in statements]
    if plain:  # --dp-sites: a mixed federation
        lines += ["", f"Without a privacy policy (no DP, ε null): {', '.join(plain)}."]
    lines += ["", "ε after each round, as each site reported it (a status other than ok says why not):", "",
              "| round | " + " | ".join(sites) + " |", "|---|" + "---|" * len(sites)]
    for r in results["rounds"]:
        cells = []
        for site in sites:
            s = r["sites"].get(site, {})
            cells.append(_f(s.get("epsilon")) if s.get("status") in ("ok", "no data for this objective")
                         else f"{_f(s.get('epsilon'))} ({s.get('status', '—')[:40]})")
        lines.append(f"| {r['round']} | " + " | ".join(cells) + " |")
    return lines


def screening_section(results: dict) -> list[str]:
    """Faults injected on purpose, and every reply the server rejected before aggregation (and why)."""
    faults = results.get("fault_injection") or {}
    rejected = [(r["round"], site, s["status"]) for r in results["rounds"] for site, s in sorted(r["sites"].items())
                if str(s.get("status", "")).startswith("rejected")]
    skipped = [(r["round"], r["aggregation"]) for r in results["rounds"] if r.get("aggregation")]
    if not (faults or rejected or skipped):
        return []
    cfg = results["config"]
    lines = ["", "## Screening and aggregation", "",
             f"Every reply is checked before aggregation (keys, shapes, dtypes, finite values, num-examples "
             f"against the site's declaration, update norm ≤ max-update-rms {cfg.get('max-update-rms', '—')} × "
             f"√values); aggregation `{cfg.get('aggregation', 'fedavg')}`."]
    if "poisoned" in faults:
        p = faults["poisoned"]
        lines += ["", f"Fault injection: {', '.join(p['sites'])} {'sends' if len(p['sites']) == 1 else 'send'} "
                      f"`{p['kind']}` replies from round {p['from_round']} on."]
    if "dropped" in faults:
        d = faults["dropped"]
        lines += ["", f"Fault injection: {', '.join(d['sites'])} {'dies' if len(d['sites']) == 1 else 'die'} "
                      f"mid-round from round {d['from_round']} on."]
    if rejected:
        lines += ["", "| round | site | status |", "|---|---|---|"]
        lines += [f"| {rnd} | {site} | {status} |" for rnd, site, status in rejected]
    if skipped:
        lines += ["", *[f"Round {rnd}: {why}." for rnd, why in skipped]]
    return lines


def site_dp_section(results: dict) -> list[str]:
    """Site-level DP: ε after each released round, as the server's accountant composed it."""
    released = [r for r in results["rounds"] if r.get("site_dp")]
    if not released:
        return []
    first = released[0]["site_dp"]
    lines = ["", "## Site-level DP (each hospital's whole contribution protected)", "",
             f"{first['mechanism']}: noise multiplier {first['noise_multiplier']:g}, clipping norm "
             f"{first['clipping_norm']:g}, δ {first['delta']:g}; {first['accountant']}. The server sees clear "
             "updates: this protects against everyone who sees the model, not against the server.", "",
             "| round | ε | sites in the mean | updates clipped |", "|---|---|---|---|"]
    for r in released:
        d = r["site_dp"]
        lines.append(f"| {r['round']} | {_f(d['epsilon'])} | {d['sites_in_denominator']} | {d['clipped_sites']} |")
    return lines


def dp_cost_section(results: dict) -> list[str]:
    """The accuracy cost of DP: the same federation, same seed, without it."""
    plain = results.get("non_private")
    if not plain:
        return []
    langs = sorted(plain["bleu"])
    return ["", "Accuracy cost of DP (same federation, same seed, without DP):", "",
            "| | macro AUC | " + " | ".join(f"BLEU-4 {lang}" for lang in langs) + " |",
            "|---|---|" + "---|" * len(langs),
            f"| without DP | {_f(plain['auc_macro'])} | " + " | ".join(_f(plain['bleu'][lang]) for lang in langs) + " |",
            f"| with DP | {_f(results['final']['auc_macro'])} | "
            + " | ".join(_f(bleu_of(results['final'], lang)) for lang in langs) + " |"]


def final_model_section(results: dict) -> list[str]:
    """A deployment: which sites kept the final model and its card (``server.final_model``)."""
    delivery = results.get("final_model")
    if not delivery:
        return []
    lines = ["", "## The final model at the sites", ""]
    if not delivery.get("file"):
        return lines + [f"Not delivered: {delivery.get('status', 'no model file')}."]
    lines += [f"`{delivery['file']}` (sha256 `{delivery['sha256']}`) was sent to every connected site at the end of "
              "the run; a site keeps it in `<state_dir>/model/` with `model.sha256` and the model card "
              "(`MODEL_CARD.md` here).", "", "| site | model | card |", "|---|---|---|"]
    lines += [f"| {site} | {s.get('model', '—')} | {s.get('card', '—')} |"
              for site, s in sorted(delivery.get("sites", {}).items())]
    return lines


def _model_lines(cfg: dict) -> list[str]:
    """Where the model came from and what the sites sent, when not the defaults."""
    said = []
    if cfg.get("text-model"):
        said.append(f"text tower and tokenizer from `{cfg['text-model']}` (tokenizer sha256 "
                    f"{str(cfg.get('tokenizer-sha256'))[:12]}…)")
    if cfg.get("vit-weights"):
        said.append(f"image tower from `{cfg['vit-weights']}`")
    if cfg.get("adapter"):
        said.append(f"sites trained and sent `{cfg['adapter']}` adapters and the heads only; the base stayed frozen "
                    "(`model-merged.safetensors`: the adapters folded in)")
    if cfg.get("update-dtype", "fp32") != "fp32":
        said.append(f"updates sent as {cfg['update-dtype']} changes")
    return [f"Model: {'; '.join(said)}.", ""] if said else []


def write_report(run_dir: Path) -> Path:
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    plot_metric_per_round(results, run_dir / "metric_per_round.png")
    plot_site_contribution(results, run_dir / "site_contribution.png")
    cfg, specs = results["config"], results.get("site_specs", {})
    langs = sorted({lang for _, m in comparison_rows(results) for lang in (m.get("bleu") or {})})
    lines = [f"# Federated run: {len(results.get('sites', []))} sites, {len(results['rounds'])} rounds",
             "", f"Strategy `{cfg.get('strategy')}`, schedule `{cfg.get('schedule')}`, preset `{cfg.get('preset')}`,"
             f" seed {cfg.get('seed')}, local epochs {cfg.get('local-epochs')} "
             f"(report generation: {cfg.get('lm-local-epochs') or cfg.get('local-epochs')}).", ""]
    if cfg.get("init-checkpoint"):
        lines += [f"Started from `{cfg['init-checkpoint']}` (macro AUC "
                  f"{_f(results.get('initial', {}).get('auc_macro'))} before round 1), as the baselines did.", ""]
    lines += _model_lines(cfg)
    if results.get("stopped"):
        lines += [f"**Run stopped early:** {results['stopped']}", ""]
    lines += ["## Federated vs pooled vs best single site (same test split)" if results.get("baselines") else
              "## Final model (scored by the sites on their own test patients)", "",
              "| model | macro AUC | federated − this (95% interval) | "
              + " | ".join(f"BLEU-4 {lang}" for lang in langs) + " | train seconds |",
              "|---|---|---|" + "---|" * len(langs) + "---|"]
    for label, m in comparison_rows(results):
        lines.append(f"| {label} | {_f(m['auc_macro'])} | {difference_text(m)} | "
                     + " | ".join(_f(bleu_of(m, lang)) for lang in langs) + f" | {_f(m.get('seconds'), 0)} |")
    method = ((results.get("baselines") or {}).get("auc_difference") or {}).get("method")
    if method:
        lines += ["", f"Intervals: {method}."]
    by_site = results["final"].get("bleu4_by_group", {})
    if by_site:
        lines += ["", "## Reports per site's test patients (BLEU-4, every language)", "",
                  "A site's test images are decoded in every language; a language the site never trained on "
                  "is zero-shot cross-language.", "", "| site | site language | " +
                  " | ".join(langs) + " |", "|---|---|" + "---|" * len(langs)]
        for site, scores in sorted(by_site.items()):
            own = specs.get(site, {}).get("language", "?")
            cells = [f"{_f(scores.get(lang))}{'' if lang == own else ' (cross-language)'}" for lang in langs]
            lines.append(f"| {site} | {own} | " + " | ".join(cells) + " |")
    lines += selection_section(results)
    lines += ["", "## Rounds", "", "| round | objective | test AUC | validate | seconds | "
              "site: status, examples, loss, MB up |", "|---|---|---|---|---|---|"]
    for r in results["rounds"]:
        cells = r.get("skipped") or "; ".join(
            f"{name}: {s['status']}, {s.get('examples', 0)}, {_f(s.get('loss'))}, "
            f"{(s.get('bytes_up') or 0) / 2**20:.1f}" for name, s in sorted(r["sites"].items()))
        v = r.get("validation") or {}
        val = f"{v['metric']} {_f(v.get('value'))}{' ★' if v.get('best') else ''}" if v.get("metric") else "—"
        lines.append(f"| {r['round']} | {r['objective']} | {_f(r['auc_macro'])} | {val} | "
                     f"{_f(r.get('seconds'), 1)} | {cells} |")
    lines += (screening_section(results) + privacy_section(results) + site_dp_section(results)
              + dp_cost_section(results) + final_model_section(results))
    evals = [(r["round"], r["site_eval"]) for r in results["rounds"] if r.get("site_eval")]
    if evals:
        lines += ["", "## Client-side evaluation (each site, its own test patients, its language)", "",
                  "| round | site | test images | AUC | BLEU-4 |", "|---|---|---|---|---|"]
        for rnd, per_site in evals:
            for site, e in sorted(per_site.items()):
                lines.append(f"| {rnd} | {site} | {e.get('test_images', '—')} | {_f(e.get('auc_macro'))} | "
                             f"{_f(e.get('bleu4'))} |")
    lines += ["", "![metric per round](metric_per_round.png)", "", "![per-site contribution](site_contribution.png)",
              ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
