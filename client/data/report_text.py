"""Section splitting for free-text radiology reports, and the text a site trains on.

MIMIC-CXR reports are semi-structured: uppercase headers (``EXAMINATION:``, ``INDICATION:``,
``FINDINGS:``, ``IMPRESSION:``, ...) at line start, PHI as ``___``, and addenda or a wet read
sometimes placed above ``FINAL REPORT`` behind a line of underscores. Only FINDINGS and
IMPRESSION describe the image; the indication and technique would teach the decoder to write
clinical history it cannot see. Chinese reports use ``检查所见：``/``印象：`` style headers, often
on one line, so those are also recognised after ``。`` or whitespace, with either colon.
"""
from __future__ import annotations

import re

# Uppercase words + colon at line start; known colon-less title lines; Chinese headers.
_HEADER = re.compile(
    r"^[ \t]*(?P<en>[A-Z][A-Z ()/&,-]*[A-Z)])[ \t]*[:：]"
    r"|^[ \t]*(?P<title>FINAL REPORT|FINAL ADDENDUM|PRELIMINARY REPORT|ADDENDUM)[ \t]*$"
    r"|(?:^|(?<=[\s。；;]))(?P<zh>检查所见|影像所见|影像表现|所见|表现|诊断意见|影像诊断|诊断|印象|结论)"
    r"[ \t]*[:：]",
    re.MULTILINE,
)
_SEPARATOR_LINE = re.compile(r"^[ \t]*_{10,}[ \t]*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

_ZH_SECTIONS = {
    "检查所见": "findings", "影像所见": "findings", "影像表现": "findings", "所见": "findings",
    "表现": "findings", "诊断意见": "impression", "影像诊断": "impression", "诊断": "impression",
    "印象": "impression", "结论": "impression",
}
_EN_SYNONYMS = {"impressions": "impression", "finding": "findings", "comparisons": "comparison"}


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _section_name(match: re.Match[str]) -> str:
    if match.group("zh"):
        return _ZH_SECTIONS[match.group("zh")]
    name = _collapse(match.group("en") or match.group("title")).lower()
    return _EN_SYNONYMS.get(name, name)


def _last_paragraph(body: str, after_header: bool) -> str:
    """MIT-LCP's ``last_paragraph``: the free text that ends the report.

    ``body`` is the text after the final header (the whole report if there is none). When
    that header carries its own text on its line (``COMPARISON:  ___``) and paragraphs follow,
    the header's paragraph is dropped, because the read typed below it is what a radiologist
    without a template wrote.
    """
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(body) if p.strip()]
    header_owns_first = after_header and bool(body.split("\n", 1)[0].strip())
    if header_owns_first and len(paragraphs) > 1:
        paragraphs = paragraphs[1:]
    return _collapse(" ".join(paragraphs))


def extract_sections(text: str) -> dict[str, str]:
    """Split a report into ``{section name: text}`` plus ``"last_paragraph"``.

    Names are the lowercased headers (``"findings"``, ``"wet read"``, ``"final report"``);
    Chinese headers map to ``"findings"``/``"impression"``; text before the first header is
    ``"preamble"``. The last non-empty occurrence of a header wins (MIT-LCP's rule: an
    addendum's or a template's empty repeat must not shadow the report body). Values have
    whitespace collapsed; empty sections are left out.
    """
    text = _SEPARATOR_LINE.sub("", text.replace("\r\n", "\n"))
    matches = list(_HEADER.finditer(text))
    bounds = [(m.end(), _section_name(m)) for m in matches]
    pieces = [("preamble", text[:matches[0].start()] if matches else text)]
    pieces += [(name, text[start:end]) for (start, name), end
               in zip(bounds, [m.start() for m in matches[1:]] + [len(text)])]
    sections = {name: _collapse(body) for name, body in pieces if body.strip()}
    last = _last_paragraph(pieces[-1][1], after_header=bool(matches))
    if last:
        sections["last_paragraph"] = last
    return sections


def training_text(text: str) -> str:
    """FINDINGS then IMPRESSION (either alone if only one), else ``last_paragraph``, else ``""``.

    This is MIT-LCP's priority idea, keeping both image-describing sections when present;
    the caller turns ``""`` into a ``DataError``.
    """
    sections = extract_sections(text)
    described = [sections[k] for k in ("findings", "impression") if k in sections]
    return " ".join(described) if described else sections.get("last_paragraph", "")
