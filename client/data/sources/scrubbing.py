"""Every report a site reads is scrubbed of identifiers before anything uses it.

``load_records`` calls ``scrub_records`` unless the site's policy says ``scrub: off``; training,
the report bank, evaluation and ``m3fed data scrub`` all read records through it, so none of them
sees a report as it was written. Each distinct text is scrubbed once (MIMIC gives every image of a
study the same report). With ``cache`` (a deployed site's state folder: a SuperNode starts a process
per message, and a MIMIC-sized site has ~10^5 reports at ~1 ms each) the results are kept in
``scrub-<rules>.jsonl`` keyed by the text's hash, so a later process scrubs only new text; the file
holds scrubbed text only, in the site's private state folder, and a change of rules starts a new file.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from client.data.sources.records import DataReport, Record
from privacy.scrub import rules_version, scrub_report

log = logging.getLogger(__name__)


def scrub_records(records: list[Record], report: DataReport, *, cache: str | Path | None = None) -> list[Record]:
    stored = _read(cache)
    new: dict[str, list] = {}
    counts: Counter = Counter()
    done: dict[tuple[str, str], str] = {}
    changed = 0
    out = []
    for record in records:
        key = (record.report, record.language)
        if key not in done:
            digest = hashlib.sha256(f"{record.language}\0{record.report}".encode()).hexdigest()
            entry = stored.get(digest)
            if entry is None:
                result = scrub_report(record.report, record.language)
                entry = [result.text if result.spans else None, dict(result.counts())]
                new[digest] = entry
            done[key] = entry[0] if entry[0] is not None else record.report
            counts.update(entry[1])
            changed += entry[0] is not None
        text = done[key]
        out.append(record if text == record.report else dataclasses.replace(record, report=text))
    _append(cache, new)
    report.scrub = {"on": True, "reports": len(done), "reports_changed": changed,
                    "by_category": dict(sorted(counts.items()))}
    return out


def _path(cache: str | Path) -> Path:
    return Path(cache) / f"scrub-{rules_version()}.jsonl"


def _read(cache: str | Path | None) -> dict[str, list]:
    if cache is None or not _path(cache).is_file():
        return {}
    stored = {}
    with _path(cache).open(encoding="utf-8") as f:
        for line in f:
            try:
                digest, text, found = json.loads(line)
                stored[digest] = [text, found]
            except (ValueError, TypeError):  # a line cut short by a crash: scrubbed again
                continue
    return stored


def _append(cache: str | Path | None, new: dict[str, list]) -> None:
    if cache is None or not new:
        return
    try:
        Path(cache).mkdir(parents=True, exist_ok=True)
        with _path(cache).open("a", encoding="utf-8") as f:
            f.writelines(json.dumps([d, text, found], ensure_ascii=False) + "\n" for d, (text, found) in new.items())
    except OSError as exc:  # a cache that cannot be written costs time, not the round
        log.warning("scrubbed reports not stored in %s: %s", cache, exc)
