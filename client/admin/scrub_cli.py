"""``m3fed data scrub``: what a site's reports look like once identifiers are removed, before any use.

Reads the data as training reads it (``load_records``, every source m3fed knows), scrubs each
report once (one line per study and language: MIMIC gives every image of a study the same
report), and writes JSON lines; the data itself is never written. The examples it prints show
each removed identifier as its category (``[name]``, ``[date]``), never its value.
"""
from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from client.errors import DataError


def scrub_dataset(data: str, out: str) -> dict:
    """Write ``out`` (JSON lines) and return the summary: counts per category, records, examples."""
    from client.data.sources import load_records
    from privacy.scrub import CATEGORIES, scrub_report

    data_path, out_path = Path(data).resolve(), Path(out).resolve()
    if out_path == data_path or data_path in out_path.parents:
        raise DataError(out, f"--out is inside the data ({data}); write the scrubbed copy elsewhere, the data is "
                             "never changed")
    if out_path.is_dir():
        raise DataError(out, "--out is a directory; give a file name (e.g. scrubbed.jsonl)")
    records, report = load_records(data, scrub=False)
    rows: dict[tuple[str, str, str], dict] = {}
    for r in records:
        row = rows.setdefault((r.patient_id, r.study_id, r.language), {
            "patient_id": r.patient_id, "study_id": r.study_id, "language": r.language, "split": r.split,
            "modality": r.modality, "images": [], "text": r.report})
        if r.image:
            row["images"].append(r.image)
    counts, changed, examples = Counter(), 0, []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".partial")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows.values():
            text = row.pop("text")
            result = scrub_report(text, row["language"])
            found = dict(result.counts())
            counts.update(found)
            changed += bool(found)
            f.write(json.dumps({**row, "report": result.text, "removed": found}, ensure_ascii=False) + "\n")
            if found:
                examples.append({"patient_id": row["patient_id"], "language": row["language"],
                                 "shown": _labelled(text, result.spans)})
    os.replace(tmp, out_path)
    return {"data": data, "out": str(out_path), "reports": len(rows), "reports_changed": changed,
            "by_category": {c: counts.get(c, 0) for c in CATEGORIES}, "examples": examples,
            "skipped": len(report.skipped), "skipped_items": [{"path": p, "reason": why} for p, why in report.skipped]}


def _labelled(text: str, spans) -> str:
    out, last = [], 0
    for s in spans:
        out += [text[last:s.start], f"[{s.category}]"]
        last = s.end
    return " ".join(("".join(out) + text[last:]).split())


def scrub_command(args: argparse.Namespace) -> int:
    summary = scrub_dataset(args.data, args.out)
    summary["examples"] = summary["examples"][: max(args.show, 0)]
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    console = Console()
    console.print(f"[bold]{summary['reports']}[/] reports read, {summary['reports_changed']} with identifiers "
                  f"removed; written to {summary['out']}", highlight=False)
    table = Table("category", "removed")
    for category, n in summary["by_category"].items():
        table.add_row(category, str(n))
    console.print(table)
    for ex in summary["examples"]:
        console.print(f"{ex['patient_id']} ({ex['language']}): {ex['shown']}", markup=False, highlight=False)
    if summary["skipped"]:
        console.print(f"[yellow]{summary['skipped']} records skipped[/] (m3fed data check lists them)")
    return 0


def add_scrub_parser(data: argparse._SubParsersAction) -> None:
    p = data.add_parser("scrub", help="write each report with identifiers removed (the data is not changed)")
    p.add_argument("--data", required=True, help="anything `m3fed data check` accepts")
    p.add_argument("--out", required=True, help="JSON lines to write: patient_id, study_id, language, report, ...")
    p.add_argument("--show", type=int, default=5, help="print N scrubbed examples, identifiers shown as [category]")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=scrub_command)
