"""Section splitting on MIMIC-CXR-shaped and Chinese reports."""
from __future__ import annotations

from client.data.report_text import extract_sections, training_text

FULL = """\
                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)
 
 INDICATION:  ___ year old woman with ___ and cough  // eval for pneumonia
 
 TECHNIQUE:  Chest PA and lateral
 
 COMPARISON:  ___
 
 FINDINGS: 
 
 The cardiomediastinal silhouette is normal.  The lungs are clear without
 focal consolidation.  No pleural effusion or pneumothorax.
 
 IMPRESSION: 
 
 No acute cardiopulmonary process.
"""

ONLY_IMPRESSION = """\
                                 FINAL REPORT
 HISTORY:  Chest pain.
 
 IMPRESSION:  Mild cardiomegaly.  No edema.
"""

NEITHER = """\
                                 FINAL REPORT
 EXAMINATION:  CHEST (PORTABLE AP)
 
 INDICATION:  ___ with line placement
 
 COMPARISON:  ___
 
 Single portable view of the chest.  Right IJ line ends in the low SVC.
 
 No pneumothorax.
"""

WITH_ADDENDUM = """\
                                 FINAL ADDENDUM
 ADDENDUM:  Findings were discussed with Dr. ___ at 10:15 on ___.
 ______________________________________________________________________________
                                 FINAL REPORT
 WET READ: ___ ___ 4:27 PM
   Small left effusion.
 
 FINDINGS:  Small left pleural effusion.  Heart size is normal.
 
 IMPRESSION:  Small left pleural effusion.
"""


def test_full_report_sections() -> None:
    sections = extract_sections(FULL)
    assert sections["examination"] == "CHEST (PA AND LAT)"
    assert sections["indication"].startswith("___ year old woman with ___")
    assert sections["technique"] == "Chest PA and lateral"
    assert sections["comparison"] == "___"
    assert sections["findings"] == ("The cardiomediastinal silhouette is normal. The lungs are "
                                    "clear without focal consolidation. No pleural effusion or "
                                    "pneumothorax.")
    assert sections["impression"] == "No acute cardiopulmonary process."
    assert sections["last_paragraph"] == "No acute cardiopulmonary process."
    assert training_text(FULL) == sections["findings"] + " " + sections["impression"]


def test_only_impression() -> None:
    assert "findings" not in extract_sections(ONLY_IMPRESSION)
    assert training_text(ONLY_IMPRESSION) == "Mild cardiomegaly. No edema."


def test_neither_falls_back_to_last_paragraph() -> None:
    sections = extract_sections(NEITHER)
    assert sections["comparison"].startswith("___ Single portable view")
    assert training_text(NEITHER) == ("Single portable view of the chest. Right IJ line ends "
                                      "in the low SVC. No pneumothorax.")


def test_addendum_kept_apart_from_body() -> None:
    sections = extract_sections(WITH_ADDENDUM)
    assert sections["addendum"] == "Findings were discussed with Dr. ___ at 10:15 on ___."
    assert sections["wet read"] == "___ ___ 4:27 PM Small left effusion."
    assert training_text(WITH_ADDENDUM) == (
        "Small left pleural effusion. Heart size is normal. Small left pleural effusion.")


def test_last_nonempty_occurrence_wins() -> None:
    text = "FINDINGS: Old text.\nIMPRESSION: First.\nFINDINGS:\nIMPRESSION: Second.\n"
    sections = extract_sections(text)
    assert (sections["findings"], sections["impression"]) == ("Old text.", "Second.")


def test_chinese_headers_on_one_line_and_both_colons() -> None:
    text = "检查所见：双肺纹理清晰，未见实变。印象:未见明显异常。"
    sections = extract_sections(text)
    assert sections["findings"] == "双肺纹理清晰，未见实变。"
    assert sections["impression"] == "未见明显异常。"
    assert training_text(text) == "双肺纹理清晰，未见实变。 未见明显异常。"
    assert training_text("表现：心影增大。\n诊断意见：心脏增大。") == "心影增大。 心脏增大。"


def test_headerless_report_is_its_own_last_paragraph() -> None:
    assert training_text("Heart normal.\n\nLungs clear.") == "Heart normal. Lungs clear."
    assert training_text("双肺纹理清晰。") == "双肺纹理清晰。"


def test_empty_text_gives_empty_string() -> None:
    assert extract_sections("") == {}
    assert training_text("") == ""
    assert training_text("  \n \n") == ""
