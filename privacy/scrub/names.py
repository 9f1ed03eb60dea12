"""Person and hospital names, English and Chinese.

A name is found by its context (a title, a role word, ``signed by``, ``患者``, ``医师``, credentials
after it), or on its own when the name lists know it (``Given Surname``, ``SURNAME, Given``,
``LAST^FIRST``, a Chinese surname + given name standing alone between punctuation). A name once
found is masked wherever else it occurs in the report. Report words never count as names: a
token that is one (``Heart``, ``Effusion``, ``Radiology``) ends a candidate.
"""
from __future__ import annotations

import re
from functools import lru_cache

from privacy.scrub.gazetteer import COMMON, chinese_names, latin_names
from privacy.scrub.spans import Span

UP = "A-ZÀ-ÖØ-ÞĀ-ɏḀ-ỿ"  # Latin capitals with accents (Latin-1, Extended-A and -B, Vietnamese)
LO = "a-zß-öø-ÿĀ-ɏḀ-ỿ"
WORD = rf"(?:[{UP}]['’])?[{UP}][{LO}]+(?:['’-][{UP}]?[{LO}]+|[{UP}][{LO}]+)*"  # Smith, O'Neill, MacPhilbin, Gregory-Davis, Szabó
CAPS = rf"[{UP}]{{2,}}(?:['’-][{UP}]+)*(?![{LO}])"          # SMITH, O'NEILL
PARTICLE = r"(?:van|von|der|den|de|del|della|la|le|du|di|da|dos|das|do|bin|ibn|al|el|ter|ten|y|Ó|Ní|Nic|Uí|Mac|Mc)"
TOKEN = rf"(?:{WORD}|{CAPS}|[{UP}]\.)"
NAME = rf"(?:{PARTICLE}[ \t]+)*{TOKEN}(?:,?[ \t]+(?:{PARTICLE}[ \t]+)*{TOKEN}){{0,3}}"  # on one line: a header's next field is not a name
TITLES = r"(?:(?i:dr|drs|doctor)|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sr|Sister|Nurse|Rev|Madam|Mme|Mlle|Sir|Dame)"
CUES = (r"(?:patient(?:'s)?\s+name|patient|pt|name|signed(?:\s+electronically)?\s+by|electronically\s+signed\s+by|"
        r"dictated\s+by|transcribed\s+by|read\s+by|reviewed\s+by|interpreted\s+by|reported\s+by|verified\s+by|"
        r"approved\s+by|performed\s+by|prepared\s+by|seen\s+by|examined\s+by|attending(?:\s+physician|\s+radiologist)?|"
        r"radiologist|resident|fellow|technologist|tech|sonographer|referring(?:\s+(?:physician|provider|doctor|md))?|"
        r"ordering(?:\s+(?:physician|provider|md))?|requested\s+by|discussed\s+(?:with|by)|communicated\s+(?:to|with|by)|"
        r"relayed\s+to|reported\s+to|notified|paged|called|spoke\s+(?:with|to)|spoken\s+(?:with|to)|conveyed\s+to|"
        r"informed|d/w|cc|c\.c\.|pcp|primary\s+care(?:\s+(?:physician|provider))?|surgeon|physician|provider|nurse|"
        r"mother|father|wife|husband|son|daughter|spouse|guardian|next\s+of\s+kin|emergency\s+contact|contact|per|"
        r"wet\s+read|reviewed\s+with|seen\s+with|reached|addressed\s+to|i,|"
        r"by|to|with|and|from|for|cc:)")
WEAK_CUES = {"by", "to", "with", "and", "from", "for", "per"}
CREDENTIALS = r"(?:M\.?D\.?|D\.?O\.?|Ph\.?D\.?|R\.?N\.?|N\.?P\.?|PA-C|RT(?:\(R\))?|MBBS|FRCR|FRCPC|DNP|MPH|RPA)(?![A-Za-z])"
HOSPITAL = (rf"(?:(?:St\.?|Saint|Mount|Mt\.?)\s+)?(?:(?:{WORD}|[{UP}]{{2,}}|&|and)\s+(?:of\s+(?:the\s+)?)?){{1,6}}"
            r"(?:Hospital|Hospitals|Medical\s+Cent(?:er|re)|Health\s+Cent(?:er|re)|Clinic|Infirmary|Health\s+System|"
            r"Healthcare|Medical\s+Group|Cancer\s+(?:Cent(?:er|re)|Institute)|Memorial|Sanatorium|Hospice|"
            r"Family\s+Health|Health|Institute|Children's)(?![A-Za-z])"
            rf"(?:\s+(?:of|at)\s+(?:the\s+)?(?:{WORD}\s?){{1,4}})?"
            rf"|(?:St\.?|Saint)[ \t]+{WORD}['’]s?(?![{LO}])")  # St. Luke's, St Thomas' (with or without "Hospital")
HOSPITAL_WORDS = frozenset("hospital hospitals medical center centre health clinic infirmary system healthcare group "
                           "cancer memorial sanatorium hospice institute family of the at and".split())
# Words after a cue that are not a person: departments, roles, headers, fields, credentials.
NOT_NAMES = frozenset("""
emergency department team service services unit units floor ward icu ed er or pacu nicu radiology surgery medicine
oncology cardiology pulmonology neurology urology orthopedics pediatrics obstetrics clinic staff house physician
physicians doctor doctors nurse nurses resident residents attending fellow provider providers covering on-call call
primary care family patient patients findings impression comparison indication technique history examination exam
report final addendum wet read preliminary the a an this that these those who which no not see above below per
name sex gender dob birth date time age id mrn acc accession phone tel fax pager email address facility location
room bed md do phd rn np pa pa-c rt mbbs frcr ap ct cxr mri pet us kub ekg ecg iv po prn bid tid qid am pm
male female m f yes unknown n/a na mr mrs ms dr ssn ordering referring medical insurance postal code zip
record number no exam society criteria guidelines guideline classification score sign syndrome disease catheter
lymphoma procedure fracture node nodes prior previous study studies film films radiograph radiographs
image images series chest abdomen pelvis head neck coli aureus pneumoniae influenzae lab labs results result
""".split())

ZH_COMPOUND = ("欧阳 司马 上官 诸葛 东方 皇甫 令狐 公孙 慕容 尉迟 长孙 宇文 司徒 夏侯 轩辕 端木 独孤 南宫 西门 万俟 闻人 "
               "澹台 公冶 宗政 濮阳 太史 申屠 钟离 呼延 赫连 第五 百里 东郭 南门 羊舌 微生 梁丘 左丘 东门 拓跋").split()
# Surnames the name lists lack that reports do carry (traditional forms included); none is a common word.
ZH_RARE = set("闫芮紀陳張劉楊黃趙吳鄭謝馮韓鄧蕭葉蘇盧蔣覃佟檀岑禹谌滕庞仇冼咸蔺宓佘隗靳蓟宿邰鄂籍逯")
ZH_SURNAME_CUES = (r"(?:患者|病人|患儿|姓名|报告医师|报告医生|审核医师|审核医生|审核者|审核人|审核|报告者|报告人|记录者|记录人|"
                   r"书写医师|签名|签字|检查医师|检查医生|申请医师|申请医生|送检医师|临床医师|主治医师|主任医师|住院医师|"
                   r"医师|医生|技师|护士|家属|联系人|请联系|联系|通知|告知|已告知|电话告知|电话通知|转告|诊断医师|复核医师|"
                   r"复核|操作者|登记者|由)")
ZH_TITLE = r"(?:医生|医师|大夫|主任|教授|先生|女士|小姐|护士|老师|同志|技师|院长|博士)"  # 刘医生: the surname alone
ZH_ACTS = r"(?:的家属|家属|复核|审核|签发|书写|确认)"
ZH_ROLE_WORDS = ("申请", "主治", "主任", "住院", "审核", "报告", "临床", "诊断", "复核", "检查", "操作", "记录", "书写", "送检",
                 "管床", "值班", "门诊", "上级", "进修", "实习", "规培", "责任", "主管", "副主任", "于是", "于今", "常规", "常见",
                 "明显", "高密", "高度", "周围", "周边", "左侧", "右侧", "双侧", "石灰", "叶间", "段支", "门静", "张力",
                 "印象", "所见", "影像", "结论", "表现", "意见", "建议", "备注", "性别", "年龄", "科室", "床号", "部位",
                 "方法", "日期", "时间", "平扫", "增强", "胸部", "正位", "侧位", "床旁", "急诊", "男性", "女性", "阴性",
                 "阳性", "正常", "异常", "未见", "双肺", "心影", "胸廓", "纵隔", "气管", "主动", "钙化", "结节", "积液",
                 "肺纹", "肺野", "肺门", "胸膜", "膈肌", "骨质", "检查", "对比", "随访", "复查", "无殊", "同前", "较前",
                 "通知", "告知", "联系", "电话", "高龄", "高危", "老年", "余同", "余未", "建议", "考虑", "温度", "包裹",
                 "管状", "管腔", "管壁", "叶间", "段间", "支气", "支架", "江水", "周岁")
ZH_HOSPITAL = (r"(?:(?![于在住至到从经由赴去往转来自行为患者现居的是及与今昨本我该其外曾已送，。；：、\s])[\u4e00-\u9fff0-9]){2,16}?"
               r"(?:医院|卫生院|医学中心|医疗中心|诊所|保健院|卫生服务中心|体检中心|影像中心|[一二三四五六七八九]院|附院)")
ZH_HOSPITAL_SHORT = r"(?:协和|华西|湘雅|齐鲁|瑞金|华山|中山医|同济|仁济|长海|长征|西京|北医[一二三四五六]院|天坛|宣武|安贞|朝阳医|积水潭|301)"
# A Chinese given name never holds a function character, and ends before a report word starts:
# ``患者王伟于`` ends at 伟, ``王志明显示`` is read as 王志 + 明显 (明 alone is a common given-name character).
ZH_FUNCTION = set("于在是的了和与及或为行后前时要已经被把将对向从至岁")
ZH_NUMERALS = set("〇零一二三四五六七八九十百")
ZH_BIGRAMS = frozenset("""
明显 正常 平扫 高密 增高 增大 双肺 左侧 右侧 未见 可见 可能 建议 随访 复查 考虑 异常 心影 肺野 肺纹 胸腔 积液 结节
钙化 纹理 清晰 模糊 大小 密度 病灶 影像 检查 所见 印象 诊断 报告 医师 医生 审核 日期 时间 年龄 性别 科室 床号 电话
联系 家属 要求 复印 告知 通知 沟通 临床 术后 改变 插管 在位 少量 中量 大量 轻度 重度 约为 左肺 右肺 上叶 下叶 中叶
肺门 纵隔 气管 支气管 主动 膈肌 肋骨 胸膜 心脏 心胸 比约 形态 边缘 实变 水肿 气胸 不张 肿块 渗出 磨玻 间质 增厚 结构
较前 同前 无殊 稍高 稍低 略高 略低 以上 以下 之间 复核 签发 书写 确认 主任 教授 先生 女士 护士 同志 技师 院长 博士
病人 患者 患儿 姓名 签名 签字 申请 送检 门诊 住院 急诊 床旁 正位 侧位 增强 阴性 阳性 部位 方法 备注 结论 表现 意见
""".split())



@lru_cache(maxsize=1)
def clinical_words() -> frozenset[str]:
    """Every word the repository's report phrases use, lower-cased, and the words above: never names."""
    from shared_model.findings import PHRASES

    words = set()
    for phrases in PHRASES.get("en", {}).values():
        for options in (phrases.positive, phrases.negative, phrases.uncertain):
            for text in options:
                words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    return frozenset(words | NOT_NAMES)


def _is_word(token: str) -> bool:
    """A report word: never part of a name, whatever its case."""
    return token.strip(".,:;").lower() in clinical_words()


def _is_common(token: str) -> bool:
    """A report word or an English word that is also a name: a name only in context."""
    return _is_word(token) or token.strip(".,").lower() in COMMON


def _name_tokens(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim a candidate name to its leading run of tokens that are not report words."""
    run = []
    for m in re.finditer(r"[^\s,]+", text[start:end]):
        token = m.group()
        initial = re.fullmatch(rf"[{UP}]\.?", token) is not None  # ``M.`` is not the word "m"
        if not initial and (_is_word(token) or token.lower() in HOSPITAL_WORDS):
            break
        run.append((start + m.start(), start + m.end()))
    if not run:
        return None
    return run[0][0], run[-1][1]


def _known(token: str, names: frozenset[str]) -> bool:
    return token in names or token.title() in names or token.capitalize() in names


@lru_cache(maxsize=1)
def _english_patterns() -> dict[str, re.Pattern[str]]:
    return {
        # The name is read in a look-ahead, so one field's match never swallows the next field's cue.
        "title": re.compile(r"(?<![A-Za-z])" + TITLES + r"\.?[ \t]+(?=(" + NAME + r"))"),
        "cue": re.compile(r"(?<![A-Za-z])(?i:" + CUES + r")(?![A-Za-z])[ \t]*[:：,-]?[ \t]*(?=(?:(?i:the[ \t]+)?"
                          + TITLES + r"\.?[ \t]+)?(" + NAME + r"))"),
        "credentials": re.compile(r"(?<![A-Za-z])(?=(" + NAME + r")[ \t]*,?[ \t]+" + CREDENTIALS + ")"),
        "dicom": re.compile(rf"(?<![\w^])[{UP}{LO}'’-]+\^[{UP}{LO}'’-]+(?:\^[{UP}{LO}'’.-]*)*"),
        "initial": re.compile(rf"(?<![{UP}{LO}])[{UP}]\.[ \t]*(?:[{UP}]\.[ \t]*)?({WORD})(?![{LO}])"),
        "hospital": re.compile(HOSPITAL),
        "token": re.compile(rf"(?<![{UP}{LO}])(?:{WORD}|{CAPS})"),
    }


@lru_cache(maxsize=1)
def _strict_given() -> frozenset[str]:
    return frozenset(g for g in latin_names()[0] if g.lower() not in COMMON)


def find_english(text: str) -> list[Span]:
    given, surnames = latin_names()
    patterns = _english_patterns()
    spans: list[Span] = []

    def add(start: int, end: int, category: str = "name") -> None:
        trimmed = _name_tokens(text, start, end) if category == "name" else (start, end)
        if trimmed:
            spans.append(Span(trimmed[0], trimmed[1], category))

    for m in patterns["title"].finditer(text):
        add(*m.span(1))
    for m in patterns["cue"].finditer(text):
        start, end = m.span(1)
        tokens = [t for t in re.split(r"[\s,]+", text[start:end]) if t]
        weak = m.group(0).strip(" \t:,-").lower() in WEAK_CUES
        # After a weak cue (``by``, ``with``, ``per``...): a listed name, or two tokens that are no words.
        if weak and not (any(_known(t, given) or _known(t, surnames) for t in tokens)
                         or (len(tokens) >= 2 and not any(_is_common(t) for t in tokens[:2]))):
            continue
        add(start, end)
    for m in patterns["credentials"].finditer(text):
        add(*m.span(1))
    for m in patterns["dicom"].finditer(text):  # DICOM LAST^FIRST
        spans.append(Span(m.start(), m.end(), "name"))
    spans += _pairs(text, given, surnames)
    for m in patterns["initial"].finditer(text):
        if not _is_common(m.group(1)):
            add(m.start(), m.end())
    for m in patterns["hospital"].finditer(text):
        if not all(w.lower() in HOSPITAL_WORDS or _is_word(w) for w in re.findall(rf"[{UP}{LO}']+", m.group())):
            spans.append(Span(m.start(), m.end(), "hospital"))
    return spans + _again(text, spans)


def _pairs(text: str, given: frozenset[str], surnames: frozenset[str]) -> list[Span]:
    """Two or three capitalised tokens standing together that the name lists say are a name."""
    tokens = list(_english_patterns()["token"].finditer(text))
    strict_given = _strict_given()
    found = []
    for a, b in zip(tokens, tokens[1:]):
        gap = text[a.end():b.start()]
        first, last = a.group(), b.group()
        if _is_word(first) or _is_word(last) or "\n\n" in gap:
            continue
        initial = re.fullmatch(rf"\s+[{UP}]\.?\s+", gap) is not None
        plain = re.fullmatch(rf"\s+(?:{PARTICLE}\s+)*", gap) is not None
        comma = re.fullmatch(r",\s*", gap) is not None
        if plain or initial:
            if ((_known(first, strict_given) and not _is_common(last))
                    or (_known(first, given) and _known(last, surnames))
                    or (initial and (_known(first, given) or not (_is_common(first) or _is_common(last))))):
                found.append(Span(a.start(), b.end(), "name"))
        elif comma and _known(first, surnames) and _known(last, given) and not _is_common(first):
            found.append(Span(a.start(), b.end(), "name"))
    return found


@lru_cache(maxsize=1)
def _chinese_patterns() -> tuple[frozenset[str], dict[str, re.Pattern[str]]]:
    all_surnames = frozenset(chinese_names()[1]) | frozenset(ZH_COMPOUND) | ZH_RARE
    surname = "(?:" + "|".join(sorted(map(re.escape, all_surnames), key=len, reverse=True)) + ")"
    return all_surnames, {
        "cue": re.compile(ZH_SURNAME_CUES + r"\s*[:：]?\s*(" + surname + r"[\u4e00-\u9fff]{1,2})"),
        "title": re.compile("(" + surname + r"[\u4e00-\u9fff]{0,2}?)" + ZH_TITLE),
        "acts": re.compile("(" + surname + r"[\u4e00-\u9fff]{1,2}?)" + ZH_ACTS),
        "known": re.compile("(" + surname + r")([\u4e00-\u9fff]{1,2})"),
        "alone": re.compile(r"(?<![\u4e00-\u9fff])(" + surname + r")([\u4e00-\u9fff]{1,2})(?![\u4e00-\u9fff])"),
        "hospital": re.compile(ZH_HOSPITAL),
        "short": re.compile(ZH_HOSPITAL_SHORT + r"(?:医院)?"),
    }


def find_chinese(text: str) -> list[Span]:
    if not any("\u4e00" <= c <= "\u9fff" for c in text):
        return []
    given = chinese_names()[0]
    all_surnames, patterns = _chinese_patterns()
    spans: list[Span] = []

    def name_span(start: int, end: int, strict: bool, shortest: int = 2) -> None:
        """Drop trailing characters that begin the next words (``患者王伟于`` ends at 伟)."""
        while end - start > 1 and _starts_word(text, end - 1):
            end -= 1
        candidate = text[start:end]
        if end - start < shortest or any(candidate.startswith(w) for w in ZH_ROLE_WORDS):
            return
        if strict and not (candidate[:2] in ZH_COMPOUND or candidate[0] in all_surnames):
            return
        spans.append(Span(start, end, "name"))

    for m in patterns["cue"].finditer(text):
        name_span(*m.span(1), strict=False)
    for m in patterns["title"].finditer(text):
        name_span(*m.span(1), strict=False, shortest=1)
    for m in patterns["acts"].finditer(text):
        name_span(*m.span(1), strict=True)
    for m in patterns["known"].finditer(text):
        if m.group(2) in given and _given_ok(text, m.start(2), m.end()) and len(m.group()) >= 3:
            name_span(m.start(), m.end(), strict=True)
    # A run of two to four Chinese characters standing alone (between punctuation, spaces, digits or
    # Latin letters) that starts with a surname: the name fields of a report header.
    for m in patterns["alone"].finditer(text):
        if _given_ok(text, m.start(2), m.end()):
            name_span(m.start(), m.end(), strict=True)
    for pattern in (patterns["hospital"], patterns["short"]):
        for m in pattern.finditer(text):
            spans.append(Span(m.start(), m.end(), "hospital"))
    return spans + _again(text, spans)


def _given_ok(text: str, start: int, end: int) -> bool:
    """No function character, and no report word starting inside the given name."""
    return not any(_starts_word(text, i) for i in range(start, end))


def _starts_word(text: str, i: int) -> bool:
    """``text[i]`` is a function character, starts a report word, or starts a number (二〇二二年)."""
    return (text[i] in ZH_FUNCTION or text[i:i + 2] in ZH_BIGRAMS
            or (text[i] in ZH_NUMERALS and i + 1 < len(text) and text[i + 1] in ZH_NUMERALS | set("年月日号")))


def _again(text: str, spans: list[Span]) -> list[Span]:
    """Every other occurrence of a name already found (``Smith`` after ``Dr. John Smith``)."""
    found = {text[s.start:s.end] for s in spans if s.category == "name"}
    parts = {p for n in found for p in re.split(r"[\s,.^]+", n) if len(p) >= 3 and not _is_common(p)}
    parts |= {n for n in found if len(n) >= 2}
    more = []
    for part in parts:
        pattern = (rf"(?<![{UP}{LO}])" + re.escape(part) + rf"(?![{UP}{LO}])") if part.isascii() or not any(
            "\u4e00" <= c <= "\u9fff" for c in part) else re.escape(part)
        more += [Span(m.start(), m.end(), "name") for m in re.finditer(pattern, text)]
    return more
