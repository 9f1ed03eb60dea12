"""Every report a site reads is scrubbed of identifiers before anything uses it.

``load_records`` calls ``scrub_records`` unless the site's policy says ``scrub: off``; training,
the report bank, evaluation and ``m3fed data scrub`` all read records through it, so none of them
sees a report as it was written. Each distinct text is scrubbed once (MIMIC gives every image of a
study the same report).
"""
from __future__ import annotations

import dataclasses
from collections import Counter

from client.data.sources.records import DataReport, Record
from privacy.scrub import scrub_report


def scrub_records(records: list[Record], report: DataReport) -> list[Record]:
    done: dict[tuple[str, str], tuple[str, Counter]] = {}
    counts: Counter = Counter()
    changed_texts = 0
    out = []
    for record in records:
        key = (record.report, record.language)
        if key not in done:
            result = scrub_report(record.report, record.language)
            done[key] = (result.text, result.counts())
            counts.update(result.counts())
            changed_texts += bool(result.spans)
        text = done[key][0]
        out.append(record if text == record.report else dataclasses.replace(record, report=text))
    report.scrub = {"on": True, "reports": len(done), "reports_changed": changed_texts,
                    "by_category": dict(sorted(counts.items()))}
    return out
