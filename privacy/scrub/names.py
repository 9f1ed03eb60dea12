"""Person and hospital names, English and Chinese.

A name is found by its context (a title, a role word, ``signed by``, ``患者``, ``医师``, credentials
after it), or on its own when the gazetteer knows it (``Given Surname``, ``SURNAME, Given``, a
three-character Chinese name of a known surname and given name). A name once found is then
masked wherever else it occurs in the report. Clinical words never count as names: a capitalised
token that is a report word (``Heart``, ``Effusion``) ends a candidate.
"""
from __future__ import annotations

import re
from functools import lru_cache

from privacy.scrub.gazetteer import COMMON, chinese_names, latin_names
from privacy.scrub.spans import Span

TOKEN = r"(?:[A-Z][a-z]+(?:['’-][A-Z]?[a-z]+)*|[A-Z]'[A-Z][a-z]+|Mc[A-Z][a-z]+|[A-Z]\.|[A-Z]{2,}(?=,))"
NAME = TOKEN + r"(?:\s+" + TOKEN + r"){0,3}"
TITLES = r"(?:Dr|Drs|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sr|Sister|Nurse|Rev|Madam|Mme|Mlle|Sir|Dame)"
CUES = (r"(?:patient(?:'s)?\s+name|patient|pt|name|signed(?:\s+electronically)?\s+by|electronically\s+signed\s+by|"
        r"dictated\s+by|transcribed\s+by|read\s+by|reviewed\s+by|interpreted\s+by|reported\s+by|verified\s+by|"
        r"approved\s+by|performed\s+by|prepared\s+by|seen\s+by|examined\s+by|attending(?:\s+physician|\s+radiologist)?|"
        r"radiologist|resident|fellow|technologist|tech|sonographer|referring(?:\s+(?:physician|provider|doctor|md))?|"
        r"ordering(?:\s+(?:physician|provider|md))?|requested\s+by|discussed\s+(?:with|by)|communicated\s+(?:to|with|by)|"
        r"relayed\s+to|reported\s+to|notified|paged|called|spoke\s+(?:with|to)|spoken\s+(?:with|to)|conveyed\s+to|"
        r"informed|d/w|cc|c\.c\.|pcp|primary\s+care(?:\s+(?:physician|provider))?|surgeon|physician|provider|nurse|"
        r"mother|father|wife|husband|son|daughter|spouse|guardian|next\s+of\s+kin|emergency\s+contact|contact|"
        r"by|to|with|and|from|for|cc:)")
CREDENTIALS = r"(?:M\.?D\.?|D\.?O\.?|Ph\.?D\.?|R\.?N\.?|N\.?P\.?|PA-C|RT(?:\(R\))?|MBBS|FRCR|FRCPC|DNP|MPH|RPA)(?![A-Za-z])"
HOSPITAL = (r"(?:(?:St\.?|Saint|Mount|Mt\.?)\s+)?(?:(?:[A-Z][a-z][A-Za-z'’.-]*|&)\s+(?:of\s+(?:the\s+)?)?){1,6}"
            r"(?:Hospital|Hospitals|Medical\s+Cent(?:er|re)|Health\s+Cent(?:er|re)|Clinic|Infirmary|Health\s+System|"
            r"Healthcare|Medical\s+Group|Cancer\s+Cent(?:er|re)|Memorial|Sanatorium|Hospice)(?![A-Za-z])"
            r"(?:\s+(?:of|at)\s+(?:the\s+)?(?:[A-Z][A-Za-z'’&.-]+\s?){1,4})?")
HOSPITAL_WORDS = frozenset("hospital hospitals medical center centre health clinic infirmary system healthcare group "
                           "cancer memorial sanatorium hospice of the at".split())
ZH_SURNAME_CUES = (r"(?:患者|病人|患儿|姓名|报告医师|报告医生|审核医师|审核医生|审核者|审核人|审核|报告者|报告人|记录者|记录人|"
                   r"书写医师|签名|签字|检查医师|检查医生|申请医师|申请医生|送检医师|临床医师|主治医师|主任医师|住院医师|"
                   r"医师|医生|技师|护士|家属|联系人|通知|告知|已告知|电话告知|电话通知|转告|诊断医师|复核医师|操作者|登记者)")
ZH_TITLES = r"(?:医生|医师|大夫|主任|教授|先生|女士|小姐|护士|老师|同志|技师|院长|博士)"
ZH_HOSPITAL = (r"(?:(?![于在住至到从经由赴去往转来自行为患者家现居的是及与今昨本我该其外曾已送])[\u4e00-\u9fff0-9]){2,16}?"
               r"(?:医院|卫生院|医学中心|医疗中心|诊所|保健院|卫生服务中心|体检中心|影像中心)")
# Characters that end a Chinese given name: they start the report's next words, never a name's.
ZH_NOT_GIVEN = set("于在是的了和与及或未见示有无为行查做后前时年月日岁双两左右上下中内外侧肺心胸膈肋骨影部区段叶门管腔"
                   "例次处个枚条片点线状性样度密高低增减大小多少轻重正常异常明显稍略较可考虑建议复诊请随访院科室号床")


# Words that follow a cue but are not a person: departments, roles, report headers.
NOT_NAMES = frozenset("""
emergency department team service services unit units floor ward icu ed er or pacu nicu radiology surgery medicine
oncology cardiology pulmonology neurology urology orthopedics pediatrics obstetrics clinic staff house physician
physicians doctor doctors nurse nurses resident residents attending fellow provider providers covering on-call call
primary care family patient patients findings impression comparison indication technique history examination exam
report final addendum wet read preliminary the a an this that these those who which no not see above below per
""".split())


@lru_cache(maxsize=1)
def clinical_words() -> frozenset[str]:
    """Every word the repository's report phrases use, lower-cased: these are never names."""
    from shared_model.findings import PHRASES

    words = set()
    for phrases in PHRASES.get("en", {}).values():
        for options in (phrases.positive, phrases.negative, phrases.uncertain):
            for text in options:
                words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    return frozenset(words | NOT_NAMES)


def _is_word(token: str) -> bool:
    """A report word: never part of a name, whatever its case."""
    return token.strip(".,").lower() in clinical_words()


def _is_common(token: str) -> bool:
    """A report word or an English word that is also a name: a name only in context."""
    return _is_word(token) or token.strip(".,").lower() in COMMON


def _name_tokens(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim a candidate name to its leading run of tokens that are not report words."""
    run = []
    for m in re.finditer(r"\S+", text[start:end]):
        token = m.group().rstrip(",")
        if _is_word(token) or token.lower() in HOSPITAL_WORDS:
            break
        run.append((start + m.start(), start + m.start() + len(token)))
    if not run:
        return None
    return run[0][0], run[-1][1]


def find_english(text: str) -> list[Span]:
    given, surnames = latin_names()
    spans: list[Span] = []

    def add(start: int, end: int, category: str = "name") -> None:
        trimmed = _name_tokens(text, start, end) if category == "name" else (start, end)
        if trimmed:
            spans.append(Span(trimmed[0], trimmed[1], category))

    for m in re.finditer(r"(?<![A-Za-z])" + TITLES + r"\.?\s+(" + NAME + r")", text):
        add(*m.span(1))
    for m in re.finditer(r"(?<![A-Za-z])(?i:" + CUES + r")\s*[:：,-]?\s*(?:(?i:the\s+)?" + TITLES + r"\.?\s+)?("
                         + NAME + r")", text):
        start, end = m.span(1)
        tokens = text[start:end].split()
        # After a weak cue (``by``, ``to``, ``and``...) only a gazetteer name counts.
        weak = m.group(0)[: start - m.start()].strip(" :,-").lower() in {"by", "to", "with", "and", "from", "for"}
        if not text[start].isupper() or (weak and not any(t.strip(".,") in given | surnames for t in tokens)):
            continue
        add(start, end)
    for m in re.finditer(r"(" + NAME + r")\s*,?\s+" + CREDENTIALS, text):
        add(*m.span(1))
    for m in re.finditer(r"(?<![A-Za-z])([A-Z][a-z]+(?:['’-][A-Z]?[a-z]+)*)(\s+[A-Z]\.?)?\s+"
                         r"([A-Z][a-z]+(?:['’-][A-Z]?[a-z]+)*)(?![A-Za-z])", text):
        first, last = m.group(1), m.group(3)
        if first in given and not _is_common(first) and not _is_common(last):
            add(m.start(), m.end())
        elif last in surnames and first in given:
            add(m.start(), m.end())
    for m in re.finditer(r"(?<![A-Za-z])([A-Z][A-Za-z'’-]+),\s*([A-Z][a-z]+|[A-Z]{2,})(?:\s+[A-Z]\.?)?(?![A-Za-z])",
                         text):
        last, first = m.group(1), m.group(2)
        if last.title() in surnames and first.title() in given:
            add(m.start(), m.end())
    for m in re.finditer(r"(?<![A-Za-z])[A-Z]\.\s*(?:[A-Z]\.\s*)?([A-Z][a-z]+)(?![A-Za-z])", text):
        if m.group(1) in surnames and not _is_common(m.group(1)):
            add(m.start(), m.end())
    for m in re.finditer(HOSPITAL, text):
        spans.append(Span(m.start(), m.end(), "hospital"))
    return spans + _again(text, spans)


def find_chinese(text: str) -> list[Span]:
    given, surnames = chinese_names()
    surname = "(?:" + "|".join(sorted(map(re.escape, surnames), key=len, reverse=True)) + ")"
    spans: list[Span] = []

    def given_end(start: int, end: int) -> int:
        """Drop trailing characters that begin the next words (``患者王伟于`` ends at 伟)."""
        while end - start > 1 and text[end - 1] in ZH_NOT_GIVEN:
            end -= 1
        return end

    for m in re.finditer(ZH_SURNAME_CUES + r"\s*[:：]?\s*(" + surname + r"[\u4e00-\u9fff]{1,2})", text):
        start, end = m.span(1)
        end = given_end(start, end)
        if end - start >= 2:
            spans.append(Span(start, end, "name"))
    for m in re.finditer("(" + surname + r"[\u4e00-\u9fff]{1,2}?)" + ZH_TITLES, text):
        spans.append(Span(m.start(1), m.end(1), "name"))
    for m in re.finditer("(" + surname + r")([\u4e00-\u9fff]{2})", text):
        if m.group(2) in given and not set(m.group(2)) & ZH_NOT_GIVEN:
            spans.append(Span(m.start(), m.end(), "name"))
    for m in re.finditer(ZH_HOSPITAL, text):
        spans.append(Span(m.start(), m.end(), "hospital"))
    return spans + _again(text, spans)


def _again(text: str, spans: list[Span]) -> list[Span]:
    """Every other occurrence of a name already found (``Smith`` after ``Dr. John Smith``)."""
    found = {text[s.start:s.end] for s in spans if s.category == "name"}
    parts = {p for n in found for p in re.split(r"[\s,.]+", n) if len(p) >= 3 and not _is_word(p)}
    parts |= {n for n in found if len(n) >= 2}
    more = []
    for part in parts:
        for m in re.finditer(r"(?<![A-Za-z\u4e00-\u9fff])" + re.escape(part) + r"(?![A-Za-z])"
                             if part.isascii() else re.escape(part), text):
            more.append(Span(m.start(), m.end(), "name"))
    return more
