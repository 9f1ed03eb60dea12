"""The model card's prose: intended use and known limitations drawn from the run's facts, and the Markdown.

Every sentence either states a fact the run recorded (languages, counts, who evaluated, which
intervals exist) or a limitation that holds for every m3fed model (not a medical device); nothing
is claimed that the run did not measure.
"""
from __future__ import annotations

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}
KIND_TITLE = {"simulation": "federated (simulation)", "deployment": "federated (deployment)", "pooled": "pooled"}


def _f(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _languages(codes) -> str:
    return ", ".join(f"{LANGUAGE_NAMES.get(c, c)} ({c})" for c in sorted(codes)) or "none recorded"


def use_and_limitations(card: dict, results: dict) -> dict:
    kind, sites, m = card["run"]["kind"], card["sites"], card["metrics"]
    trained = sorted({lang for s in sites if s.get("records") for lang in s.get("languages", [])})
    modalities = sorted({mod for s in sites for mod in s.get("modalities", [])})
    data = {True: "m3fed's synthetic MIMIC-CXR-shaped data (`m3fed synth`): its scores say nothing about real images "
                  "or real reports",
            False: "the data named in the config",
            None: "each site's own data, which the server never saw"}[card["run"]["synthetic_data"]]
    use = ["A research model: zero-shot finding scores and draft reports for chest X-ray and CT images, to study "
           "federated, multilingual medical vision–language training.",
           f"Report languages it was trained on: {_languages(trained)}; image modalities: "
           f"{', '.join(modalities) or 'none recorded'}. Other languages and modalities are outside its use.",
           "Not a medical device: not cleared, certified or clinically validated. Its scores and reports must not "
           "inform the diagnosis or care of any patient."]
    limits = [f"Trained on {data}."]
    test = m.get("test_data") or {}
    if kind == "deployment":
        scored = [n for n, e in m.get("site_eval", {}).items() if e.get("status") == "ok"]
        limits.append(f"Evaluated by {len(scored)} site(s) ({', '.join(sorted(scored)) or 'none'}) on their own test "
                      "patients, each in its own language(s), averaged by test images; a site whose policy withholds "
                      "its metrics, or that has no images, is not in the average. The server saw no image.")
    elif test.get("images") is not None:
        limits.append(f"Evaluated on {test.get('images')} test images of {test.get('patients')} patients "
                      f"({test.get('records')} image–report records in {_languages(test.get('by_language') or {})}) "
                      "from the same source as the training data.")
    limits.append("Not covered by the evaluation: external data from another hospital or scanner, prospective use, "
                  "subgroups (age, sex, disease severity), calibration of the scores, and the clinical correctness of "
                  "generated reports (BLEU-4 and ROUGE-L only count shared words with the reference report).")
    if m.get("intervals"):
        limits.append(f"Intervals: {m['interval_method']}; they are for the differences to the baselines only.")
    else:
        limits.append("No interval: this run computed none (`m3fed sim` with its baselines gives paired-bootstrap "
                      "intervals of the AUC differences); a single score can move with the training seed.")
    if card["model"].get("preset") == "tiny":
        limits.append("The `tiny` preset is a small test-size model, far smaller than the paper's.")
    if any(line.get("dp") is False for line in card["privacy"]["sites"].values()):
        limits.append("Sites without DP have no bound on what the model reveals about their records; it may "
                      "memorise report text.")
    if results.get("stopped"):
        limits.append(f"The run stopped early: {results['stopped']}.")
    return {"intended_use": use, "limitations": limits}


def render(card: dict) -> str:
    kind, model, start, m, priv = (card["run"]["kind"], card["model"], card["start"], card["metrics"],
                                   card["privacy"])
    lines = [f"# Model card: {KIND_TITLE[kind]} m3fed run", "",
             f"Run folder `{card['run']['run_dir']}`; written {card['written']} (`{card['schema']}`, the same in "
             "`model_card.json` with the whole resolved config).", "", "## Model", ""]
    for f in model["files"]:
        lines.append(f"- `{f['file']}` ({f['bytes'] / 2**20:.1f} MiB): {f['role']}; sha256 `{f['sha256']}`")
    if not model["files"]:
        lines.append("- no weights file in the run folder")
    tok = model["tokenizer"]
    lines += [f"- Use: `{model['use']}`" if model["use"] else "- Use: nothing to use",
              f"- Tokenizer `{tok.get('file')}`: sha256 `{tok.get('sha256')}`"
              + (f" (from `{tok['text_model']}`)" if tok.get("text_model") else ""),
              f"- Preset `{model.get('preset')}`" + (f", adapters `{model['adapter']}`" if model.get("adapter") else "")
              + (f", weights of round {model['round']}" if model.get("round") is not None else ""),
              f"- Started from {start['summary']}"]
    for key, label in (("init", "--init"), ("vit_weights", "--vit-weights")):
        if start.get(key):
            lines.append(f"  - {label} `{start[key]['path']}`: sha256 `{start[key].get('sha256') or '—'}`"
                         + (f" ({start[key]['note']})" if start[key].get("note") else ""))
    if start.get("text_model"):
        files = ", ".join(f"`{w['file']}` sha256 `{w['sha256']}`" for w in start["text_model"]["weights"]) or "—"
        lines.append(f"  - --text-model `{start['text_model']['path']}`: {files}")
    lines += ["", "## Sites and privacy", "",
              f"SecAgg+: {'n/a (no aggregation)' if priv['secagg'] is None else 'on' if priv['secagg'] else 'off'}.",
              ""]
    if priv.get("site_level_dp"):
        d = priv["site_level_dp"]
        lines += [f"Site-level DP (each site's whole contribution): ε {_f(d.get('epsilon'))}, δ {d.get('delta')}, "
                  f"noise multiplier {d.get('noise_multiplier')}, clipping norm {d.get('clipping_norm')}.", ""]
    lines += ["| site | training records | held-out test records | patients | languages | image modalities | "
              "rounds in the model | privacy |", "|---|---|---|---|---|---|---|---|"]
    for s in card["sites"]:
        dp = priv["sites"].get(s["name"], {}).get("line", "—")
        rounds = s.get("rounds_contributed", "—") if kind != "pooled" else "—"
        if s.get("other_status"):
            rounds = f"{rounds} ({_short(s['other_status'])})"
        modalities = ", ".join(s.get("modalities", [])) or ("none (reports only)" if s.get("images") is False else "—")
        lines.append(f"| {s['name']} | {_n(s.get('records'))} | {_n(s.get('test_records'))} | "
                     f"{_n(s.get('patients'), 'not stated')} | {', '.join(s.get('languages', [])) or '—'} | "
                     f"{modalities} | {rounds} | {dp} |")
    sources = sorted({s["counted_from"] for s in card["sites"] if s.get("counted_from")})
    lines += ["", f"Counts from {' and '.join(sources) or 'nothing the run recorded'}"
              + ("; a deployed site declares its record counts, not its patients." if kind == "deployment" else ".")
              + " Rounds in the model: rounds up to the model's own in which the site's update was averaged in.", ""]
    lines += _metric_lines(m)
    lines += ["", *_memorisation_lines(card.get("memorisation") or {"audited": False, "audits": []})]
    lines += ["", "## Intended use", "", *[f"- {u}" for u in card["intended_use"]],
              "", "## Known limitations", "", *[f"- {u}" for u in card["limitations"]], ""]
    return "\n".join(lines)


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _n(value, missing: str = "—") -> str:
    return missing if value is None else str(value)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _memorisation_lines(mem: dict) -> list[str]:
    lines = ["## Memorisation audit", ""]
    if not mem["audits"]:
        return lines + ["Not audited: the run folder holds no `memorisation*/memorisation.json` (`m3fed audit "
                        "memorisation --model RUNDIR --data SITE_DATA [--dp POLICY.yaml]` writes one)."]
    lines += ["Secret Sharer canaries (Carlini et al. 2019) trained into a copy of the report generator with one "
              "site's reports, without and with its DP policy. Exposure in bits among the candidates (at most "
              "log2 of their number; chance ≈ 1.44); control: canaries never inserted. A canary repeated r "
              "times is r units of privacy.", "",
              "| audit | training | canaries × repeats, epochs | exposure inserted (mean / max) | control | chance | "
              "p (ranks vs uniform) | secrets completed | generated = training report (not a test reference) | "
              "training-only 8-gram |", "|---|---|---|---|---|---|---|---|---|---|"]
    for a in mem["audits"]:
        if "problem" in a:
            lines.append(f"| {a['folder']} | {a['problem']} |  |  |  |  |  |  |  |  |")
            continue
        training = (f"DP-SGD ε {a['epsilon']:.2f}, δ {a['delta']:g} ({a['unit']}-level, {a['accountant']})"
                    if a["dp"] else "no DP")
        if not a["same_model"]:
            training += "; **audited another model file** (sha256 " + a["model_sha256"][:12] + "…)"
        lines.append(f"| {a['folder']} | {training} | {a['canaries']} × {a['repeats']}, {a['epochs']} | "
                     f"{a['inserted_mean']:.2f} / {a['inserted_max']:.2f} of {a['max_exposure']:.2f} | "
                     f"{a['control_mean']:.2f} | {a['chance']:.2f} | {a['uniform_p']:.3g} | "
                     f"{a['extracted']} of {a['canaries']} | {_pct(a['verbatim_train'])} "
                     f"({_pct(a['verbatim_train_only'])}) | {_pct(a['train_only_8gram'])} |")
    return lines


def _metric_lines(m: dict) -> list[str]:
    langs = sorted(set(m["bleu4"]) | set(m["rougeL"]))
    lines = ["## Metrics (test split; fractions in [0, 1])", "", f"Scored by {m['evaluated_by']}.", "",
             f"- Zero-shot macro AUC: {_f(m['auc_macro'])}"
             + ("".join(f"; {lang} {_f(v)}" for lang, v in sorted(m["auc_macro_by_language"].items())))]
    for lang in langs:
        rouge = m["rougeL"].get(lang)
        lines.append(f"- Reports in {LANGUAGE_NAMES.get(lang, lang)}: BLEU-4 {_f(m['bleu4'].get(lang))}"
                     + (f", ROUGE-L {_f(rouge)}" if rouge is not None else ""))
    per_label = {k: v for k, v in sorted(m["auc_per_label"].items()) if v is not None}
    if per_label:
        lines.append("- AUC per finding: " + ", ".join(f"{k} {_f(v)}" for k, v in per_label.items()))
    for name, b in m.get("baselines", {}).items():
        lines.append(f"- Baseline {name}: macro AUC {_f(b.get('auc_macro'))}")
    for i in m["intervals"]:
        lo, hi = i["ci95"]
        lines.append(f"- {i['comparison']}: macro AUC {i['auc_difference']:+.3f} (95% interval {lo:+.3f} to "
                     f"{hi:+.3f}, {i.get('resamples')} resamples)")
    if m.get("without_dp"):
        lines.append(f"- The same federation without DP: macro AUC {_f(m['without_dp'].get('auc_macro'))}")
    evaluated = {n: e for n, e in m.get("site_eval", {}).items()}
    if evaluated:
        lines += ["", "| site | status | test images | AUC | BLEU-4 |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {_short(e.get('status', '—'))} | {_n(e.get('test_images'))} | {_f(e.get('auc_macro'))} | "
                  f"{_f(e.get('bleu4'))} |" for n, e in sorted(evaluated.items())]
    return lines
