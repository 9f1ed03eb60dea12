"""Identifiers of every category leave the report; clinical text and the datasets' placeholders stay."""
from __future__ import annotations

import numpy as np
import pytest

from privacy.scrub import PLACEHOLDER, scrub_report

EN_CASES = [
    ("name", "Findings discussed with Dr. Emily Carter by telephone.", "Emily Carter"),
    ("name", "Electronically signed by: Robert O'Neill, MD", "Robert O'Neill"),
    ("name", "Patient: Johnson, Mary was seen.", "Johnson, Mary"),
    ("name", "Dictated by Priya Raghunathan.", "Priya Raghunathan"),
    ("name", "Results communicated to Mr. Okafor at the bedside.", "Okafor"),
    ("date", "Compared with the study of 03/14/2019.", "03/14/2019"),
    ("date", "Prior exam on January 5th, 2018 showed no change.", "January 5th, 2018"),
    ("date", "Comparison: 2019-01-02.", "2019-01-02"),
    ("date", "Wet read at 14:35 by the resident.", "14:35"),
    ("id", "MRN: 00456789", "00456789"),
    ("id", "Accession # RAD-2019-004512", "RAD-2019-004512"),
    ("phone", "Please call (617) 555-0123 ext. 45 with questions.", "(617) 555-0123 ext. 45"),
    ("phone", "Pager 4-5678.", "4-5678"),
    ("email", "Send images to j.doe@example-hospital.org please.", "j.doe@example-hospital.org"),
    ("url", "Protocol at https://intranet.example.org/ct?id=7 today.", "https://intranet.example.org/ct?id=7"),
    ("address", "Lives at 123 Elm Street, Springfield, IL 62704.", "123 Elm Street, Springfield, IL 62704"),
    ("postcode", "UK address postcode SW1A 1AA on file.", "SW1A 1AA"),
    ("age", "INDICATION: 92-year-old woman with cough.", "92"),
    ("age", "Patient aged 97 with dyspnea.", "97"),
    ("hospital", "Transferred from St. Mary's Hospital overnight.", "St. Mary's Hospital"),
]
ZH_CASES = [
    ("name", "报告医师：李秀英 审核医师：王伟", "李秀英"),
    ("name", "患者张建国，男，胸闷一周。", "张建国"),
    ("name", "已电话告知刘医生。", "刘"),
    ("date", "对比2019年3月5日胸片。", "2019年3月5日"),
    ("date", "检查日期：二〇一九年三月五日", "二〇一九年三月五日"),
    ("id", "病历号：A12345678", "A12345678"),
    ("id", "住院号 20190305", "20190305"),
    ("phone", "联系电话：13800138000", "13800138000"),
    ("phone", "电话010-65295114转放射科", "010-65295114"),
    ("cn_id", "身份证号110101199003071234，", "110101199003071234"),
    ("cn_id", "身份证 11010119900307123X", "11010119900307123X"),
    ("age", "年龄：95岁", "95"),
    ("address", "住址：北京市东城区帅府园路1号", "北京市东城区帅府园路1号"),
    ("postcode", "邮编：100730", "100730"),
    ("hospital", "外院（上海市第一人民医院）胸片提示", "上海市第一人民医院"),
]


@pytest.mark.parametrize(("category", "text", "value"), EN_CASES + ZH_CASES)
def test_each_category_is_removed(category, text, value):
    result = scrub_report(text, "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en")
    assert value not in result.text, result.text
    assert PLACEHOLDER in result.text
    covered = [s for s in result.spans if s.start <= text.index(value) < s.end]
    assert covered, f"{value!r} not inside any span"
    assert covered[0].category == category


def test_clinical_text_numbers_and_placeholders_are_kept():
    text = ("FINDINGS: A 5 mm nodule in the right upper lobe, 1.2 x 0.8 cm effusion. T12 compression deformity. "
            "C5-6 fusion. 2 views of the chest. ___-year-old man. Comparison: XXXX. 20 mL. 45-year-old. "
            "检查所见：右肺上叶见一5mm结节，张力性气胸未见，心影不大，双肺纹理清晰。印象：心肺未见异常。")
    result = scrub_report(text)
    assert result.text == text, [text[s.start:s.end] for s in result.spans]


def test_the_synthetic_reports_lose_nothing():
    """Every report the synthetic generator writes (EN and ZH, all findings and phrasings) is clinical text
    with MIMIC placeholders only: the scrubber leaves it byte for byte."""
    from sim.synth.labels import PATHOLOGIES, Mention
    from sim.synth.reports import TECHNIQUE, chinese, english

    rng = np.random.default_rng(0)
    for _ in range(300):
        mentions = {label: Mention(value=float(rng.choice([1.0, 0.0, -1.0])), phrase=int(rng.integers(4)))
                    for label in PATHOLOGIES if rng.random() < 0.4}
        for text in (english(str(rng.choice(list(TECHNIQUE))), mentions, rng), chinese(mentions)):
            result = scrub_report(text)
            assert result.text == text, [text[s.start:s.end] for s in result.spans]


def test_a_name_found_once_is_removed_everywhere():
    text = "Discussed with Dr. Okonkwo-Baptiste. Okonkwo-Baptiste agreed with the plan."
    assert "Okonkwo" not in scrub_report(text).text


def test_counts_by_category():
    result = scrub_report("Dr. Ann Lee called 617-555-0199 on 3/4/2021 about MRN 7654321.")
    assert dict(result.counts()) == {"name": 1, "phone": 1, "date": 1, "id": 1}


def test_sentence_punctuation_and_the_next_sentence_survive():
    text = ("Address: 42 Wallaby Way, Sydney. Findings: no pneumothorax. Exam date 12/25/2022 10:30 AM. "
            "Right lower lobe. Website www.example.com. No focal consolidation.")
    out = scrub_report(text).text
    assert "Findings: no pneumothorax." in out and "___. Right lower lobe." in out and "___. No focal" in out
    assert not [v for v in ("Wallaby", "Sydney", "12/25/2022", "10:30", "example") if v in out]
