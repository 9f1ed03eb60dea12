"""Reports are scrubbed where a site reads them: training, bank and evaluation see no identifier;
``m3fed data scrub`` writes the scrubbed copy and never the data; ``scrub: off`` leaves text as written."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

from client.app.node import site_scrub
from client.data.sources import load_records
from sim.m3fed_command import main

PLANTED = {
    "en": ("FINDINGS: Small left effusion. Discussed with Dr. Helen Marsh-Whitaker on 04/22/2020 at 10:15, "
           "callback 617-555-0147, MRN 88412345. IMPRESSION: Small left effusion.",
           ["Helen", "Marsh-Whitaker", "04/22/2020", "10:15", "617-555-0147", "88412345"],
           ["Small left effusion", "FINDINGS", "IMPRESSION"]),
    "zh": ("检查所见：患者赵敏，93岁，身份证号32010219300415002X，左侧少量胸腔积液。报告医师：孙立新 2020年4月22日。"
           "印象：左侧少量胸腔积液。",
           ["赵敏", "93", "32010219300415002X", "孙立新", "2020年4月22日"],
           ["左侧少量胸腔积液", "检查所见", "印象"]),
}


def _manifest(tmp_path):
    path = tmp_path / "data" / "manifest.jsonl"
    path.parent.mkdir()
    rows = [{"patient_id": f"p-{lang}", "study_id": f"s-{lang}", "language": lang, "split": "train",
             "report": text} for lang, (text, _, _) in PLANTED.items()]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_records_are_scrubbed_unless_the_site_turns_it_off(tmp_path):
    path = _manifest(tmp_path)
    records, report = load_records(path)
    for r in records:
        text, planted, kept = PLANTED[r.language]
        assert not [p for p in planted if p in r.report], r.report
        assert all(k in r.report for k in kept)
    assert report.summary(records)["scrub"]["reports_changed"] == 2
    raw, raw_report = load_records(path, scrub=False)
    assert {r.report for r in raw} == {t for t, _, _ in PLANTED.values()}
    assert raw_report.summary(raw)["scrub"] == {"on": False}


def test_a_node_scrubs_by_default():
    assert site_scrub(SimpleNamespace(node_config={})) is True
    assert site_scrub(SimpleNamespace(node_config={"scrub": "off"})) is False


def test_data_scrub_writes_one_scrubbed_line_per_report_and_leaves_the_data(tmp_path, capsys):
    path = _manifest(tmp_path)
    before = path.read_bytes()
    out = tmp_path / "out" / "scrubbed.jsonl"
    assert main(["data", "scrub", "--data", str(tmp_path / "data"), "--out", str(out), "--json", "--show", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert path.read_bytes() == before and len(lines) == 2 and len(summary["examples"]) == 1
    for line in lines:
        text, planted, kept = PLANTED[line["language"]]
        assert {"patient_id", "language", "report"} <= set(line)
        assert not [p for p in planted if p in line["report"]] and all(k in line["report"] for k in kept)
    assert summary["by_category"]["name"] >= 3 and summary["by_category"]["cn_id"] == 1
    assert "Marsh" not in summary["examples"][0]["shown"] and "[name]" in summary["examples"][0]["shown"]


def test_data_scrub_user_mistakes_are_one_line(tmp_path):
    path = _manifest(tmp_path)
    for args, message in ((["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o.jsonl")], "does not exist"),
                          (["--data", str(path.parent), "--out", str(path)], "inside the data")):
        run = subprocess.run([sys.executable, "-m", "sim.m3fed_command", "data", "scrub", *args],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_a_later_process_reuses_the_stored_results_and_new_rules_start_afresh(tmp_path, monkeypatch):
    import client.data.sources.scrubbing as scrubbing

    path, cache = _manifest(tmp_path), tmp_path / "state"
    first, _ = load_records(path, scrub_cache=cache)
    (stored,) = cache.glob("scrub-*.jsonl")
    assert not [p for _, planted, _ in PLANTED.values() for p in planted if p in stored.read_text(encoding="utf-8")]
    monkeypatch.setattr(scrubbing, "scrub_report", lambda *a: (_ for _ in ()).throw(AssertionError("scrubbed again")))
    again, report = load_records(path, scrub_cache=cache)
    assert [r.report for r in again] == [r.report for r in first] and report.scrub["reports_changed"] == 2
    monkeypatch.setattr(scrubbing, "rules_version", lambda: "other-rules")
    try:
        load_records(path, scrub_cache=cache)
        raise RuntimeError("expected the new rules to scrub again")
    except AssertionError as exc:
        assert "scrubbed again" in str(exc)
