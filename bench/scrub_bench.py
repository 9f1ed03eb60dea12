"""Recall and precision of the report scrubber per category, on a labelled corpus (issue J).

The corpus (``bench/scrub_corpus.py``) plants identifiers into real-looking English and Chinese
reports; this runs ``privacy.scrub.scrub_report`` on every report and scores it:

- recall: a planted identifier is found only when every alphanumeric character of it lies inside a
  returned span (whatever category the scrubber gave it); ``char_recall`` is the share of its
  alphanumeric characters covered; ``agree`` the share of found ones with a span of the planted category;
- precision: returned spans of a category that overlap a planted identifier / all returned spans of
  that category; ``char_precision``: non-space characters masked that belong to a planted identifier;
- clinical tokens kept (English words, Chinese characters of the base report not touched by a span),
  clinical numbers and ages under 90 kept, ``___``/``XXXX`` placeholders kept, reports per second.

Every figure is given for all reports, English and Chinese. Names are split by the Faker locale they
came from (core en_US/en_GB/zh_CN/zh_TW; other locales the scrubber's gazetteer reads; held out).

    python bench/scrub_bench.py [--n 2000] [--seed 0] [--out bench/results/scrub_bench.json] [--show-misses 30]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scrub_corpus import CORE_LOCALES, build_corpus  # noqa: E402

CATEGORIES = ("name", "date", "id", "phone", "email", "url", "address", "postcode", "age", "cn_id", "hospital")
GOALS = {"name": 0.95, **{c: 0.99 for c in ("phone", "id", "cn_id", "postcode", "date", "age", "email", "url")}}
CLINICAL_GOAL = 0.99
LANGS = ("all", "en", "zh")


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _locale_group(locale: str) -> str:
    """core / gazetteer (another locale the scrubber's name lists read) / held_out."""
    if locale in CORE_LOCALES:
        return "core"
    try:
        from privacy.scrub import gazetteer
        known = set(getattr(gazetteer, "LATIN_LOCALES", ())) | set(getattr(gazetteer, "CHINESE_LOCALES", ()))
    except ImportError:
        known = set()
    return "gazetteer" if locale in known else "held_out"


def _tokens_known(value: str) -> bool | None:
    """Whether every token of a name is in the scrubber's name lists (None when they cannot be read)."""
    try:
        from privacy.scrub.gazetteer import chinese_names, latin_names
    except ImportError:
        return None
    if value.isascii() or any(ch.isascii() and ch.isalpha() for ch in value):
        given, surnames = latin_names()
        toks = [t for t in value.replace(",", " ").replace("^", " ").replace("-", " ").split() if len(t) > 2]
        return all(t.title() in given or t.title() in surnames or t in given | surnames for t in toks)
    given, surnames = chinese_names()
    return any(value.startswith(s) and (value[len(s):] in given or not value[len(s):]) for s in surnames)


def evaluate(corpus: list[dict], scrub: Callable) -> dict:
    """Score ``scrub(text, language) -> .spans`` on ``corpus``; returns metrics, misses and false positives."""
    planted = {lang: Counter() for lang in LANGS}
    found, chars, chars_cov, agree = ({lang: Counter() for lang in LANGS} for _ in range(4))
    span_n, span_tp = ({lang: Counter() for lang in LANGS} for _ in range(2))
    masked = {lang: Counter() for lang in LANGS}  # "all" / "planted" non-space characters masked
    clin = {lang: Counter() for lang in LANGS}
    neg = {lang: Counter() for lang in LANGS}
    ph = {lang: Counter() for lang in LANGS}
    fmt_stats: dict[str, Counter] = defaultdict(Counter)
    split = defaultdict(Counter)  # (category, cue|bare) and name splits
    misses, fps, lost = [], [], []
    seconds = 0.0
    for doc_i, doc in enumerate(corpus):
        text, lang = doc["text"], doc["language"]
        t0 = time.perf_counter()
        spans = list(scrub(text, lang).spans)
        seconds += time.perf_counter() - t0
        cov = [None] * len(text)
        for s in spans:
            for k in range(s.start, s.end):
                cov[k] = s
        planted_mask = [False] * len(text)
        for p in doc["planted"]:
            planted_mask[p["start"]:p["end"]] = [True] * (p["end"] - p["start"])
        for p in doc["planted"]:
            cat = p["category"]
            idx = [k for k in range(p["start"], p["end"]) if text[k].isalnum()]
            hit = [k for k in idx if cov[k] is not None]
            ok = len(hit) == len(idx)
            same = any(cov[k].category == cat for k in hit)
            for L in ("all", lang):
                planted[L][cat] += 1
                found[L][cat] += ok
                chars[L][cat] += len(idx)
                chars_cov[L][cat] += len(hit)
                agree[L][cat] += ok and same
            fmt_stats[f"{lang}|{cat}|{p['format']}"].update(n=1, found=ok)
            keys = [(cat, "cue" if p["cue"] else "bare")]
            if cat == "name":
                keys += [("name:locale", _locale_group(p.get("locale", ""))),
                         ("name:tokens_in_gazetteer", str(_tokens_known(p["value"])))]
            for key in keys:
                for L in ("all", lang):
                    split[(*key, L)].update(n=1, found=ok)
            if not ok:
                shown = "".join("#" if cov[k] is not None else text[k] for k in range(p["start"], p["end"]))
                misses.append({"doc": doc_i, "language": lang, "category": cat, "format": p["format"],
                               "cue": p["cue"], "locale": p.get("locale"), "value": p["value"], "masked_as": shown,
                               "context": _context(text, p["start"], p["end"])})
        for s in spans:
            tp = any(planted_mask[s.start:s.end])
            for L in ("all", lang):
                span_n[L][s.category] += 1
                span_tp[L][s.category] += tp
            if not tp:
                hits = [n["kind"] for n in doc["negatives"] if n["start"] < s.end and s.start < n["end"]]
                clin_hit = any(a < s.end and s.start < b for a, b in doc["clinical"])
                fps.append({"doc": doc_i, "language": lang, "category": s.category, "text": text[s.start:s.end],
                            "hits": hits or (["clinical"] if clin_hit else []), "context": _context(text, s.start, s.end)})
        for k, ch in enumerate(text):
            if cov[k] is not None and not ch.isspace():
                for L in ("all", lang):
                    masked[L]["all"] += 1
                    masked[L]["planted"] += planted_mask[k]
        for key in ("clinical", "clinical_other"):
            for a, b in doc.get(key, ()):
                kept = all(cov[k] is None for k in range(a, b))
                for L in ("all", lang):
                    clin[L][key] += 1
                    clin[L][key + ":kept"] += kept
                if not kept and key == "clinical_other":
                    lost.append({"language": lang, "word": text[a:b], "context": _context(text, a, b)})
        for n in doc["negatives"]:
            kept = all(cov[k] is None for k in range(n["start"], n["end"]))
            for L in ("all", lang):
                neg[L][n["kind"]] += 1
                neg[L][n["kind"] + ":kept"] += kept
        for a, b in doc["placeholders"]:
            for L in ("all", lang):
                ph[L]["n"] += 1
                ph[L]["kept"] += all(cov[k] is None for k in range(a, b))
    return _summary(corpus, planted, found, chars, chars_cov, agree, span_n, span_tp, masked, clin, neg, ph,
                    fmt_stats, split, misses, fps, lost, seconds)


def _context(text: str, start: int, end: int, width: int = 40) -> str:
    return (text[max(0, start - width):start] + "[[" + text[start:end] + "]]" + text[end:end + width]).replace("\n", "⏎")


def _summary(corpus, planted, found, chars, chars_cov, agree, span_n, span_tp, masked, clin, neg, ph, fmt_stats,
             split, misses, fps, lost, seconds) -> dict:
    per_cat = {}
    for cat in CATEGORIES:
        per_cat[cat] = {L: {"planted": planted[L][cat], "recall": _ratio(found[L][cat], planted[L][cat]),
                            "char_recall": _ratio(chars_cov[L][cat], chars[L][cat]),
                            "agree": _ratio(agree[L][cat], found[L][cat]), "spans": span_n[L][cat],
                            "precision": _ratio(span_tp[L][cat], span_n[L][cat])} for L in LANGS}
        per_cat[cat]["goal"] = GOALS.get(cat)
    overall = {L: {"planted": sum(planted[L].values()), "recall": _ratio(sum(found[L].values()), sum(planted[L].values())),
                   "span_precision": _ratio(sum(span_tp[L].values()), sum(span_n[L].values())),
                   "char_precision": _ratio(masked[L]["planted"], masked[L]["all"]),
                   "clinical_tokens": clin[L]["clinical"],
                   "clinical_kept": _ratio(clin[L]["clinical:kept"], clin[L]["clinical"]),
                   "clinical_other_tokens": clin[L]["clinical_other"],
                   "clinical_other_kept": _ratio(clin[L]["clinical_other:kept"], clin[L]["clinical_other"]),
                   "placeholders": ph[L]["n"], "placeholders_kept": _ratio(ph[L]["kept"], ph[L]["n"]),
                   "negatives_kept": {k: _ratio(neg[L][k + ":kept"], neg[L][k]) for k in sorted(neg[L])
                                      if not k.endswith(":kept")},
                   "negatives_n": {k: v for k, v in sorted(neg[L].items()) if not k.endswith(":kept")}}
               for L in LANGS}
    splits = {f"{a}|{b}|{c}": {"n": v["n"], "recall": _ratio(v["found"], v["n"])} for (a, b, c), v in sorted(split.items())}
    formats = sorted(({"key": k, "n": v["n"], "recall": _ratio(v["found"], v["n"])} for k, v in fmt_stats.items()),
                     key=lambda r: (r["recall"], -r["n"]))
    return {"per_category": per_cat, "overall": overall, "splits": dict(sorted(splits.items())), "formats": formats,
            "reports": len(corpus), "seconds": round(seconds, 3),
            "reports_per_s": round(len(corpus) / seconds, 1) if seconds else None, "misses": misses,
            "false_positives": fps, "clinical_lost": lost}


def _scrubber_version() -> dict:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for f in sorted((root / "privacy" / "scrub").glob("*.py")):
        digest.update(f.name.encode() + f.read_bytes())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"commit": commit, "privacy_scrub_sha256": digest.hexdigest()[:16]}


def _print(res: dict, show: int) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=170)
    f = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731
    t = Table(title=f"Scrubber on {res['reports']} labelled reports (recall: every alphanumeric char masked)")
    for col in ("category", "goal", "n en/zh", "recall", "en", "zh", "char rec", "agree", "spans", "precision",
                "prec en", "prec zh", "ok"):
        t.add_column(col, justify="right" if col != "category" else "left")
    for cat, r in res["per_category"].items():
        a, e, z = r["all"], r["en"], r["zh"]
        ok = "" if r["goal"] is None or a["recall"] is None else ("yes" if a["recall"] >= r["goal"] else "NO")
        t.add_row(cat, f(r["goal"]) if r["goal"] else "", f"{e['planted']}/{z['planted']}", f(a["recall"]),
                  f(e["recall"]), f(z["recall"]), f(a["char_recall"]), f(a["agree"]), str(a["spans"]), f(a["precision"]),
                  f(e["precision"]), f(z["precision"]), ok)
    con.print(t)
    t = Table(title="Overall")
    for col in ("metric", "all", "en", "zh"):
        t.add_column(col)
    o = res["overall"]
    for key in ("planted", "recall", "span_precision", "char_precision", "clinical_tokens", "clinical_kept",
                "clinical_other_tokens", "clinical_other_kept", "placeholders", "placeholders_kept"):
        t.add_row(key, *(str(o[L][key]) for L in LANGS))
    for kind in o["all"]["negatives_n"]:
        t.add_row(f"kept: {kind}", *(f"{o[L]['negatives_kept'].get(kind)} (n={o[L]['negatives_n'].get(kind, 0)})"
                                     for L in LANGS))
    t.add_row("reports/s", str(res["reports_per_s"]), "", "")
    con.print(t)
    t = Table(title="Recall by context and name origin")
    for col in ("split", "n", "recall"):
        t.add_column(col)
    for key, v in res["splits"].items():
        t.add_row(key, str(v["n"]), f(v["recall"]))
    con.print(t)
    t = Table(title="Formats under 0.99 recall (language|category|slot:format)")
    for col in ("format", "n", "recall"):
        t.add_column(col)
    for r in res["formats"]:
        if r["recall"] is not None and r["recall"] < 0.99:
            t.add_row(r["key"], str(r["n"]), f(r["recall"]))
    con.print(t)
    if show:
        con.print(f"[bold]First {show} misses[/bold] (masked_as: # = masked)")
        for m in res["misses"][:show]:
            con.print(f"  {m['language']} {m['category']:<8} {m['format']:<28} {'cue ' if m['cue'] else 'bare'} "
                      f"{m['value']!r} -> {m['masked_as']!r}  | {m['context']}", markup=False, highlight=False)
        con.print(f"Clinical words lost: {Counter(x['word'] for x in res['clinical_lost']).most_common(show)}",
                  markup=False, highlight=False)
        con.print(f"[bold]First {show} false positives[/bold]")
        for p in res["false_positives"][:show]:
            con.print(f"  {p['language']} {p['category']:<8} {p['text']!r} {p['hits']}  | {p['context']}",
                      markup=False, highlight=False)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/scrub_bench.json")
    parser.add_argument("--show-misses", type=int, default=30)
    args = parser.parse_args(argv)
    from privacy.scrub import scrub_report

    corpus = build_corpus(args.n, args.seed)
    res = evaluate(corpus, scrub_report)
    _print(res, args.show_misses)
    out = {"config": {"n": args.n, "seed": args.seed, **_scrubber_version(),
                      "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"},
           **{k: v for k, v in res.items() if k not in ("misses", "false_positives", "clinical_lost")},
           "clinical_lost": res["clinical_lost"][:300],
           "misses": res["misses"][:300], "false_positives": res["false_positives"][:300],
           "misses_total": len(res["misses"]), "false_positives_total": len(res["false_positives"])}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
