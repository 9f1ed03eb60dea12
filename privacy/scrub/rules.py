"""Pattern rules for dates, numbers, contact details, places and ages, English and Chinese.

Each rule is (category, compiled pattern, group): the group's span is the identifier, so context
words (``MRN:``, ``电话``) stay and only the value becomes ``___``. Digits are bounded by
look-arounds, not ``\\b``: Python counts Chinese characters as word characters, so ``\\b`` never
falls between ``号`` and the number after it.
"""
from __future__ import annotations

import re

from privacy.scrub.spans import Span

_I = re.IGNORECASE
ND = r"(?<![\dA-Za-z])"   # no digit or Latin letter before
NA = r"(?![\dA-Za-z])"    # none after
MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
         r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
YEAR = r"(?:19|20)\d{2}"
ZH_NUM = "〇零一二三四五六七八九十"
CJK = "\u4e00-\u9fff"
# A place-name character: Chinese, but not the words that come before an address in a sentence.
PLACE = r"(?:(?![于在住至到从经由赴去往转来自行为患者现居的是及与今昨本我该其])[\u4e00-\u9fff])"
_OLD = r"(?:9\d|1[0-4]\d)"  # over 89 (HIPAA: ages over 89 are identifying)

STREET = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Ter|"
          r"Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl|Crescent|Close|Mews|Gardens|Grove|Row|Plaza)")
STATE = (r"(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|T[NX]|UT|"
         r"V[AT]|W[AIVY])")
ID_WORDS = (r"(?:MRN|MR\s*#|MR\s*No\.?|Med(?:ical)?\s+Rec(?:ord)?\s*(?:Number|No\.?|#)?|Unit\s*(?:No\.?|Number|#)|"
            r"Acc(?:ession)?\.?\s*(?:Number|No\.?|#)?|Patient\s*(?:ID|No\.?|Number|#)|Pt\.?\s*(?:ID|#)|"
            r"Exam(?:ination)?\s*(?:ID|No\.?|Number|#)|Study\s*(?:ID|No\.?|Number|#)|Order\s*(?:ID|No\.?|Number|#)|"
            r"Encounter\s*(?:ID|No\.?|Number|#)?|Visit\s*(?:ID|No\.?|Number|#)|Case\s*(?:ID|No\.?|Number|#)|"
            r"Account\s*(?:ID|No\.?|Number|#)?|Acct\.?\s*(?:No\.?|#)?|SSN|Social\s+Security\s*(?:Number|No\.?|#)?|"
            r"Member\s*(?:ID|No\.?|#)|Insurance\s*(?:ID|No\.?|#)|Policy\s*(?:ID|No\.?|#)|NHS\s*(?:No\.?|Number)?|"
            r"Hospital\s*(?:ID|No\.?|Number|#)|Record\s*(?:ID|No\.?|Number|#)|License\s*(?:No\.?|Number|#)|"
            r"Device\s*(?:ID|Serial)|Serial\s*(?:No\.?|Number|#)|ID\s*(?:No\.?|Number|#)?)")
ZH_ID_WORDS = (r"(?:病历号|病历编号|住院号|门诊号|病案号|检查号|检查编号|影像号|登记号|放射号|放射科号|ID号|床号|医保号|"
               r"医保卡号|就诊卡号|就诊号|卡号|申请单号|流水号|编号|序号|条码号|患者编号|患者ID|标本号)")


def _c(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


RULES: list[tuple[str, re.Pattern[str], int]] = [
    # ---- contact details and IDs with an unambiguous shape
    ("email", _c(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+"), 0),
    ("url", _c(r"(?:https?://|ftp://|www\.)[^\s<>\"'，。；）)]*[^\s<>\"'，。；）).,;:!?]", _I), 0),
    ("url", _c(r"(?<![A-Za-z0-9@.-])(?:[A-Za-z0-9-]+\.)+(?:com|org|net|edu|gov|mil|int|io|info|health|med|cn|uk|us|"
               r"ca|au|de|fr|jp|hk|tw|nl|it|es|ch|se|no|dk|be|at|nz|ie|in|sg|kr|local|biz)(?:/[^\s<>\"'，。；]*)?"
               r"(?![A-Za-z0-9-])(?!\.[A-Za-z0-9])", _I), 0),
    ("url", _c(r"(?<![A-Za-z0-9@.-])(?:[A-Za-z0-9-]+\.){2,}[A-Za-z]{2,10}(?:/[^\s<>\"'，。；]*)?(?![A-Za-z0-9-])"
               r"(?!\.[A-Za-z0-9])"), 0),
    ("url", _c(r"(?<![\d.])(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?::\d{1,5})?(?![\d.]\d)"),
     0),
    ("cn_id", _c(ND + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + NA), 0),
    # phones: context word first, then the shapes
    ("phone", _c(r"(?:phone|tel(?:ephone)?|fax|facsimile|cell|mobile|pager|beeper|paged(?:\s+(?:at|to))?|page|"
                 r"ext(?:ension)?|call(?:back|ed)?(?:\s+(?:at|on))?|reached\s+at|contact(?:\s+number)?|电话|联系电话|手机|"
                 r"手机号|传真|分机|座机|呼机)[ \t]*(?:no\.?|number|#)?[ \t]*[:：#.]?[ \t]*"
                 r"((?:\+?\d[\d \t().\-]{2,}\d|\d{3,}))", _I), 1),
    ("phone", _c(ND + r"(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?"
                 + NA, _I), 0),
    ("phone", _c(ND + r"\+\d{1,3}(?:[ \t.-]?\(?\d{1,4}\)?){2,5}\d" + NA), 0),
    ("phone", _c(ND + r"(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}" + NA), 0),
    ("phone", _c(ND + r"(?:\(0\d{2,3}\)|0\d{2,3}-)\s?\d{7,8}(?:-\d{1,6})?" + NA), 0),
    # ---- dates and times (every element of a date but the year alone)
    ("date", _c(ND + r"(?:\d{1,2}([/.-])\d{1,2}\1(?:\d{4}|\d{2})|\d{4}[/.-]\d{1,2}[/.-]\d{1,2}(?:[T\s]\d{1,2}:\d{2}"
                r"(?::\d{2})?)?)" + NA), 0),
    ("date", _c(r"(?<![\w])" + MONTH + r"[\s/.-]*" + DAY + r"(?:(?:,?\s*|[/.-])(?:" + YEAR + r"|'?\d{2}(?!\d)))?" + NA,
                _I), 0),
    ("date", _c(ND + DAY + r"[\s/.-]*(?:of\s+)?" + MONTH + r"(?:(?:,?\s*|[/.-])(?:" + YEAR + r"|'?\d{2}(?!\d)))?"
                r"(?![A-Za-z])", _I), 0),
    ("date", _c(ND + r"(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])(?![\d/A-Za-z])"), 0),  # 5/15
    ("date", _c(r"(?:(?<=\bat )|(?<=\b@ )|(?<=\bat: ))(?:[01]\d|2[0-3])[0-5]\d(?!\d)(?:\s*(?:hours|hrs|h)\b)?", _I), 0),
    ("date", _c(ND + r"(?:[01]\d|2[0-3])[0-5]\d\s*(?:hours|hrs|h)(?![A-Za-z])", _I), 0),
    ("date", _c(r"(?<![\w])" + MONTH + r",?\s*" + YEAR + NA, _I), 0),
    ("date", _c(ND + r"\d{1,2}/\d{4}" + NA), 0),  # 03/2019
    ("date", _c(ND + r"(?:\d{2,4}|[" + ZH_NUM + r"]{2,4})\s*年\s*(?:\d{1,2}|[" + ZH_NUM + r"]{1,3})\s*月"
                r"(?:\s*(?:\d{1,2}|[" + ZH_NUM + r"]{1,3})\s*[日号])?"), 0),
    ("date", _c(ND + r"(?:\d{1,2}|[" + ZH_NUM + r"]{1,3})\s*月\s*(?:\d{1,2}|[" + ZH_NUM + r"]{1,3})\s*[日号]"), 0),
    ("date", _c(ND + r"(?:[01]?\d|2[0-3])[:：][0-5]\d(?:[:：][0-5]\d)?(?:\s*(?:[AaPp]\.\s?[Mm]\.|[AaPp][Mm]))?" + NA), 0),
    ("date", _c(ND + r"(?:1[0-2]|0?[1-9])\s*(?:[AaPp]\.[Mm]\.|[AaPp][Mm])(?![A-Za-z])"), 0),
    ("date", _c(r"(?:凌晨|早上|上午|中午|下午|晚上|夜间)?\s*(?:[01]?\d|2[0-3])\s*[点时](?:\s*[0-5]?\d\s*分)?"), 0),
    # ---- ages over 89: the number only
    ("age", _c(ND + r"(" + _OLD + r")(?=\s*(?:-|\s)?\s*(?:years?|yrs?|y/?o|y\.o\.|yo|year-old|-year)(?![A-Za-z]))", _I), 1),
    ("age", _c(r"(?<![A-Za-z])(?:aged?|age:)\s*[:：]?\s*(" + _OLD + r")" + NA, _I), 1),
    ("age", _c(ND + r"(" + _OLD + r")\s?(?:M|F|m|f)(?![A-Za-z])"), 1),
    ("age", _c(r"(" + _OLD + r")\s*(?:岁|周岁)"), 1),
    ("age", _c(r"((?:九十[一二三四五六七八九]?|一百(?:零?[一二三四五六七八九十]+)?))\s*(?:岁|周岁)"), 1),
    ("age", _c(r"(?<![A-Za-z])((?:ninety|one[\s-]hundred)(?:[\s-](?:and[\s-])?(?:one|two|three|four|five|six|seven|"
               r"eight|nine|ten|eleven|twelve|[a-z]+teen))?)(?=[\s-]*(?:years?|yrs?|y/?o|year-old)(?![A-Za-z]))", _I), 1),
    ("age", _c(r"年龄\s*[:：]?\s*(" + _OLD + r")" + NA), 1),
    # ---- addresses and postcodes
    ("address", _c(ND + r"\d{1,6}[A-Za-z]?(?:-\d+)?\s+(?:[NSEW]\.?\s+)?(?:[A-Z][A-Za-z'.-]*\s+){1,4}" + STREET +
                   r"\.?(?:,?\s*(?:Apt|Apartment|Unit|Suite|Ste|Floor|Fl|Room|Rm|#)\.?\s*#?\s*[\w-]+)?"
                   r"(?:,[ \t]*[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){0,2})?(?:,?[ \t]*" + STATE + r"(?![A-Za-z]))?"
                   r"(?:\s*\d{5}(?:-\d{4})?)?" + NA), 0),
    ("address", _c(r"\b(?:P\.?\s?O\.?\s*Box|Post\s+Office\s+Box)\s*\d+", _I), 0),
    ("address", _c(r"(?<![A-Za-z])[A-Z][a-z]+(?:\s[A-Z][a-z]+){0,2},\s*" + STATE + r"\s+\d{5}(?:-\d{4})?" + NA), 0),
    ("address", _c(r"(?:" + PLACE + r"{2,7}(?:省|自治区|特别行政区))?(?:" + PLACE + r"{2,7}市)?(?:" + PLACE + r"{1,7}(?:区|县|旗))?"
                   + PLACE + r"{1,12}(?:路|街|大道|大街|巷|胡同|弄|里)(?:\s*\d+\s*(?:弄|巷|支弄))?\s*\d+\s*号(?:院)?"
                   r"(?:\s*\d+\s*(?:号楼|栋|幢|座|单元|楼|层|室|号))*"), 0),
    ("address", _c(PLACE + r"{1,8}(?:区|县|市|镇)" + PLACE + r"{0,12}?(?:\d+\s*(?:号楼|栋|幢|座|单元|楼|层|室|号|弄)\s*){2,}"),
     0),
    ("address", _c(PLACE + r"{1,8}(?:镇|乡|街道)" + PLACE + r"{1,6}村(?:\d+\s*(?:组|号))*"), 0),
    ("address", _c(PLACE + r"{2,7}(?:省|自治区|特别行政区)" + PLACE + r"{2,7}市(?:" + PLACE + r"{1,7}(?:区|县|旗))?"
                   r"(?:" + PLACE + r"{1,8}(?:镇|乡|街道))?(?:" + PLACE + r"{1,6}村)?"), 0),
    ("address", _c(r"(?:住址|地址|家庭住址|现住址|户籍地址|居住地)\s*[:：]\s*([^\s，。；;:：]+)"), 1),
    ("address", _c(r"(?:address|addr\.?|residing at|resides at|lives at)\s*[:：]?\s*(\d[^\n;]{4,80}?)(?=[.;\n]|$)",
                   _I), 1),
    ("postcode", _c(r"(?:zip(?:\s*code)?|postcode|postal\s+code|邮编|邮政编码)\s*[:：#]?\s*([A-Z0-9][A-Z0-9 -]{3,9}[A-Z0-9])",
                    _I), 1),
    ("postcode", _c(r"(?<![A-Za-z0-9])[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}(?![A-Za-z0-9])"), 0),   # UK
    ("postcode", _c(r"(?<![A-Za-z0-9])[A-Z]\d[A-Z]\s?\d[A-Z]\d(?![A-Za-z0-9])"), 0),          # Canada
    # ---- record numbers: after a context word, then any long number or letters-and-digits code
    ("id", _c(r"(?<![A-Za-z])" + ID_WORDS + r"\s*(?:is|was|number|no\.?)?\s*[:：#=]?\s*#?\s*"
              r"((?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9\-/.]*[A-Za-z0-9])", _I), 1),
    ("id", _c(ZH_ID_WORDS + r"\s*[:：#]?\s*((?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9\-/]*)"), 1),
    ("id", _c(ND + r"\d{3}-\d{2}-\d{4}" + NA), 0),  # SSN shape
    ("id", _c(ND + r"\d(?:[\s-]?\d){4,}" + NA), 0),  # five or more digits: no clinical measure is that long
    ("id", _c(r"(?<![\w-])(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z]{0,5}-?\d{4}[A-Za-z0-9]*(?:-[A-Za-z0-9]+)*" + NA), 0),
]


def find(text: str) -> list[Span]:
    spans = []
    for category, pattern, group in RULES:
        for match in pattern.finditer(text):
            start, end = match.span(group)
            if end > start:
                spans.append(Span(start, end, category))
    return spans
