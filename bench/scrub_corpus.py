"""A labelled corpus for the report scrubber: identifiers planted into real-looking EN and ZH reports.

Built independently of ``privacy.scrub`` (nothing here reads its rules or name lists). Each report is
a base report from the repository's own writer (``sim.synth.reports``: MIMIC-CXR style English, its
Chinese translation) plus clinical sentences with measurements that must be kept, header blocks,
sign-off lines and free-text sentences that carry identifiers, some after a cue word (``MRN:``,
``Dr.``, ``电话``) and some bare. Every planted identifier is recorded with its offsets, category,
format and whether a cue word precedes it; names also record the Faker locale they came from.

    build_corpus(n, seed) -> [{"language", "text", "planted", "clinical", "negatives", "placeholders"}]

``clinical``: spans of the base report's clinical tokens (English words, Chinese characters), and
``clinical_other`` those of them from sentences outside the repository's phrase list (eponyms, devices);
``negatives``: clinical numbers and young ages that must be kept; ``placeholders``: MIMIC ``___``
and IU X-Ray ``XXXX`` marks already in the text.
"""
from __future__ import annotations

import random
import re

import numpy as np
from faker import Faker

from sim.synth.labels import mention, sample_present, sample_risk
from sim.synth.reports import chinese, english

CORE_LOCALES = ("en_US", "en_GB", "zh_CN", "zh_TW")  # the locales any name gazetteer would start from
OTHER_LOCALES = ("en_IE", "en_NZ", "en_IN", "fr_FR", "fr_CA", "fr_CH", "es_ES", "es_AR", "es_CO", "es_MX", "it_IT",
                 "de_DE", "de_AT", "de_CH", "pt_PT", "pt_BR", "nl_NL", "nl_BE", "da_DK", "fi_FI", "sv_SE", "pl_PL",
                 "cs_CZ", "sk_SK", "sl_SI", "hr_HR", "hu_HU", "ro_RO", "ga_IE", "lv_LV", "et_EE", "tr_TR", "vi_VN")
ZH_RARE_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "慕容", "令狐", "皇甫", "尉迟", "公孙", "端木", "仇", "冼", "寇",
                    "滕", "庞", "晏", "芮", "蔺", "覃", "佟", "檀", "闫", "岑", "禹", "谌", "咸", "宓", "靳", "茹")
ZH_GIVEN_CHARS = "子梓浩宇欣怡俊杰思涵雨轩博文嘉睿佳琪晨一诺泽锦铭瑶婉灏昊彤馨若汐沐辰亦可安然紫萱皓轩奕宸语桐"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
ZH_DIGITS = "〇一二三四五六七八九"
STATES = ("MA", "NY", "CA", "IL", "TX", "NH", "RI", "CT", "PA", "OH")
US_CITIES = ("Boston", "Cambridge", "Brookline", "Springfield", "Worcester", "Quincy", "Newton", "Salem", "Lowell")
STREETS = ("Main", "Oak", "Maple", "Longwood", "Beacon", "Washington", "Elm", "Park", "Huntington", "Commonwealth",
           "Cedar", "Pine", "Harvard", "Centre", "Brookline", "Tremont", "Highland", "Chestnut")
SUFFIXES = ("Street", "St", "St.", "Avenue", "Ave", "Ave.", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Drive",
            "Court", "Way", "Place", "Terrace", "Circle", "Highway", "Parkway", "Crossing", "Pike", "Heights",
            "Loop", "Path", "Square")
EN_HOSPITALS = ("St. Mary's Hospital", "Massachusetts General Hospital", "Mayo Clinic", "Beth Israel Deaconess "
                "Medical Center", "Brigham and Women's Hospital", "Johns Hopkins Hospital", "Cleveland Clinic",
                "Mount Sinai", "NYU Langone", "Cedars-Sinai", "Royal London Hospital", "Addenbrooke's",
                "Toronto General", "UCSF Medical Center", "Kaiser Permanente", "MGH", "BIDMC", "Lahey Clinic",
                "Mount Auburn Hospital", "Boston Children's", "Dana-Farber Cancer Institute", "Tufts Medical Center",
                "Royal Infirmary of Edinburgh", "St Thomas' Hospital", "Faulkner Hospital", "Newton-Wellesley")
ZH_HOSPITALS = ("北京协和医院", "上海市第一人民医院", "复旦大学附属中山医院", "四川大学华西医院", "中山大学附属第一医院", "瑞金医院",
                "华山医院", "解放军总医院", "北京大学第三医院", "北医三院", "协和", "华西", "湘雅二院", "301医院",
                "浙江大学医学院附属第一医院", "首都医科大学附属北京朝阳医院", "广东省人民医院", "长海医院", "齐鲁医院")
ZH_CITIES = ("北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "长沙", "苏州", "郑州", "济南", "合肥")
ZH_ORDINALS = "一二三四五六七八九"


class _Ctx:
    """The random sources of one corpus: a seeded ``random.Random`` and one Faker per locale."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.fakers: dict[str, Faker] = {}
        self.seed = seed

    def faker(self, locale: str) -> Faker:
        if locale not in self.fakers:
            f = Faker(locale)
            f.seed_instance(self.seed * 1000 + len(self.fakers))
            self.fakers[locale] = f
        return self.fakers[locale]

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]


# ---------------------------------------------------------------- value generators: -> (value | (pre, value, post), fmt)
def _latin_locale(c: _Ctx) -> str:
    return c.pick(("en_US", "en_US", "en_GB")) if c.r.random() < 0.5 else c.pick(OTHER_LOCALES)


def _first_last(c: _Ctx, locale: str) -> tuple[str, str]:
    f = c.faker(locale)
    return " ".join(f.first_name().split()), " ".join(f.last_name().split())


def g_en_name(c: _Ctx):
    locale = _latin_locale(c)
    first, last = _first_last(c, locale)
    k = c.r.random()
    if k < 0.6:
        return f"{first} {last}", "first_last", locale
    if k < 0.8:
        return f"{first} {c.pick('ABCDEFGHJKLMNPRSTW')}. {last}", "first_mi_last", locale
    if k < 0.9:
        return f"{first[0]}. {last}", "initial_last", locale
    return f"{first} {last}-{_first_last(c, locale)[1]}", "first_double_last", locale


def g_en_last(c: _Ctx):
    locale = _latin_locale(c)
    return _first_last(c, locale)[1], "last_only", locale


def g_en_name_rev(c: _Ctx):
    locale = _latin_locale(c)
    first, last = _first_last(c, locale)
    k = c.r.random()
    if k < 0.5:
        return f"{last.upper()}, {first.upper()}", "LAST_FIRST_caps", locale
    if k < 0.85:
        return f"{last}, {first}", "last_first", locale
    return f"{last.upper()}^{first.upper()}", "dicom_caret", locale


def g_zh_name(c: _Ctx):
    k = c.r.random()
    if k < 0.7:
        locale = "zh_CN" if k < 0.5 else "zh_TW"
        name = c.faker(locale).name()
        return name, f"zh_{len(name)}char", locale
    surname = c.pick(ZH_RARE_SURNAMES)
    given = "".join(c.pick(ZH_GIVEN_CHARS) for _ in range(c.pick((1, 2, 2))))
    return surname + given, f"zh_rare_{len(surname)}+{len(given)}", "zh_synth"


def g_zh_surname(c: _Ctx):
    return c.faker("zh_CN").last_name(), "zh_surname_only", "zh_CN"


def _ymd(c: _Ctx) -> tuple[int, int, int]:
    return c.r.randint(1925, 2024), c.r.randint(1, 12), c.r.randint(1, 28)


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 10 <= d % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def g_date_en(c: _Ctx):
    y, m, d = _ymd(c)
    mon, mo = MONTHS[m - 1], MONTHS[m - 1][:3]
    fmts = {"m/d/yyyy": f"{m}/{d}/{y}", "mm/dd/yyyy": f"{m:02}/{d:02}/{y}", "m/d/yy": f"{m}/{d}/{y % 100:02}",
            "yyyy-mm-dd": f"{y}-{m:02}-{d:02}", "dd.mm.yyyy": f"{d:02}.{m:02}.{y}", "d-m-yyyy": f"{d}-{m}-{y}",
            "dd/mm/yyyy": f"{d:02}/{m:02}/{y}", "Month d, yyyy": f"{mon} {d}, {y}", "Mon d yyyy": f"{mo} {d} {y}",
            "Mon. d": f"{mo}. {d}", "Month dth": f"{mon} {_ordinal(d)}", "dth of Month, yyyy": f"{_ordinal(d)} of {mon}, {y}",
            "d Mon yyyy": f"{d} {mo} {y}", "dd-MON-yyyy": f"{d:02}-{mo.upper()}-{y}", "d-Mon-yy": f"{d}-{mo}-{y % 100:02}",
            "m/d": f"{m}/{d}", "Month yyyy": f"{mon} {y}", "yyyy/mm/dd": f"{y}/{m:02}/{d:02}", "yyyymmdd": f"{y}{m:02}{d:02}",
            "MONTH d, yyyy": f"{mon.upper()} {d}, {y}", "d Month": f"{d} {mon}", "mm-dd-yyyy": f"{m:02}-{d:02}-{y}"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def _zh_num(n: int, year: bool = False) -> str:
    if year:
        return "".join(ZH_DIGITS[int(ch)] for ch in str(n))
    tens, ones = divmod(n, 10)
    return ("" if tens == 0 else ("" if tens == 1 else ZH_DIGITS[tens]) + "十") + (ZH_DIGITS[ones] if ones else "")


def g_date_zh(c: _Ctx):
    y, m, d = _ymd(c)
    fmts = {"y年m月d日": f"{y}年{m}月{d}日", "y年mm月dd日": f"{y}年{m:02}月{d:02}日", "m月d日": f"{m}月{d}日",
            "m月d号": f"{m}月{d}号", "中文数字年月日": f"{_zh_num(y, True)}年{_zh_num(m)}月{_zh_num(d)}日",
            "yyyy-mm-dd": f"{y}-{m:02}-{d:02}", "yyyy.m.d": f"{y}.{m}.{d}", "yyyy/mm/dd": f"{y}/{m:02}/{d:02}",
            "y年m月": f"{y}年{m}月", "yyyymmdd": f"{y}{m:02}{d:02}", "y年m月d日(spaced)": f"{y} 年 {m} 月 {d} 日"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def g_time_en(c: _Ctx):
    h, mi, s = c.r.randint(0, 23), c.r.randint(0, 59), c.r.randint(0, 59)
    h12, ap = (h % 12 or 12), ("am" if h < 12 else "pm")
    fmts = {"HH:MM": f"{h:02}:{mi:02}", "HH:MM:SS": f"{h:02}:{mi:02}:{s:02}", "h:mm pm": f"{h12}:{mi:02} {ap}",
            "h:mm PM": f"{h12}:{mi:02} {ap.upper()}", "h:mm p.m.": f"{h12}:{mi:02} {ap[0]}.m.", "h pm": f"{h12} {ap}",
            "HHMM hours": ("", f"{h:02}{mi:02}", " hours"), "h:mmPM": f"{h12}:{mi:02}{ap.upper()}"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def g_time_zh(c: _Ctx):
    h, mi = c.r.randint(0, 23), c.r.randint(0, 59)
    part = "凌晨" if h < 6 else "上午" if h < 12 else "下午" if h < 18 else "晚上"
    fmts = {"HH:MM": f"{h:02}:{mi:02}", "HH：MM(fullwidth)": f"{h:02}：{mi:02}", "H时M分": f"{h}时{mi}分",
            "下午h点m分": f"{part}{h % 12 or 12}点{mi}分", "上午h点": f"{part}{h % 12 or 12}点", "H点": f"{h}点"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def g_datetime(c: _Ctx):
    y, m, d = _ymd(c)
    h, mi = c.r.randint(0, 23), c.r.randint(0, 59)
    return c.pick(((f"{y}-{m:02}-{d:02} {h:02}:{mi:02}", "iso_datetime"),
                   (f"{y}-{m:02}-{d:02}T{h:02}:{mi:02}:00", "iso_T_datetime"),
                   (f"{m:02}/{d:02}/{y} {h:02}:{mi:02}", "us_datetime")))


def _digits(c: _Ctx, n: int) -> str:
    return "".join(str(c.r.randint(0, 9)) for _ in range(n))


def g_mrn(c: _Ctx):
    n = c.r.randint(5, 10)
    return c.pick(((_digits(c, n), f"digits{n}"), ("000" + _digits(c, 6), "zero_padded"),
                   (c.pick("AEMP") + _digits(c, 7), "letter+7digits"), ("MR" + _digits(c, 6), "MR+digits"),
                   (f"{_digits(c, 2)}-{_digits(c, 3)}-{_digits(c, 3)}", "dd-ddd-ddd"),
                   (c.pick(("BWH", "MGH", "BID")) + "-" + _digits(c, 7), "SITE-digits")))


def g_acc(c: _Ctx):
    return c.pick(((_digits(c, 8), "digits8"), ("E" + _digits(c, 8), "E+digits"),
                   (f"RAD-{c.r.randint(2005, 2024)}-{_digits(c, 6)}", "RAD-yyyy-n"),
                   (f"CT{c.r.randint(2005, 2024)}{_digits(c, 4)}-{_digits(c, 4)}", "CTyyyymmdd-n"),
                   ("ACC" + _digits(c, 6), "ACC+digits"), (f"{_digits(c, 4)}-{_digits(c, 4)}", "dddd-dddd"),
                   (_digits(c, 4) + c.pick("ABCXYZ") + _digits(c, 3), "digits+letter+digits")))


def g_zh_id(c: _Ctx):
    return c.pick(((_digits(c, c.r.randint(6, 12)), "digits"), ("ZY" + _digits(c, 8), "ZY+digits"),
                   ("CT" + _digits(c, 10), "CT+digits"), (f"MR{c.r.randint(2005, 2024)}-{_digits(c, 5)}", "MRyyyy-n"),
                   ("P" + _digits(c, 8), "P+digits"), ("DR" + _digits(c, 11), "DR+digits")))


def g_bed(c: _Ctx):
    return str(c.r.randint(1, 60)), "bed_number"


def g_ssn(c: _Ctx):
    return c.pick(((f"{_digits(c, 3)}-{_digits(c, 2)}-{_digits(c, 4)}", "ssn"),
                   (f"{_digits(c, 3)} {_digits(c, 3)} {_digits(c, 4)}", "nhs_number")))


def g_phone_us(c: _Ctx):
    a, b, d = c.r.randint(201, 989), c.r.randint(200, 999), _digits(c, 4)
    return c.pick(((f"({a}) {b}-{d}", "(aaa) bbb-dddd"), (f"{a}-{b}-{d}", "aaa-bbb-dddd"), (f"{a}.{b}.{d}", "aaa.bbb.dddd"),
                   (f"{a} {b} {d}", "aaa bbb dddd"), (f"+1 {a} {b} {d}", "+1 spaced"), (f"+1-{a}-{b}-{d}", "+1-dashed"),
                   (f"1-800-{b}-{d}", "1-800"), (f"{a}-{b}-{d} x{_digits(c, 4)}", "x-extension"),
                   (f"{a}-{b}-{d} ext. {_digits(c, 3)}", "ext.-extension"), (f"{a}{b}{d}", "10digits"),
                   (f"{b}-{d}", "7digit-local"), (f"+44 20 {_digits(c, 4)} {_digits(c, 4)}", "uk+44"),
                   (f"0{_digits(c, 4)} {_digits(c, 6)}", "uk-national")))


def g_pager(c: _Ctx):
    return c.pick(((_digits(c, 5), "pager5"), (f"{c.r.randint(1, 9)}-{_digits(c, 4)}", "pager d-dddd"),
                   ("#" + _digits(c, 5), "pager #ddddd"), (_digits(c, 4), "ext4")))


def g_phone_cn(c: _Ctx):
    mob = c.pick("3456789") + _digits(c, 9)
    mob = "1" + mob
    area = c.pick(("010", "021", "020", "0755", "0571", "028", "027"))
    land = _digits(c, 8 if len(area) == 3 else c.pick((7, 8)))
    return c.pick(((mob, "mobile11"), (f"{mob[:3]} {mob[3:7]} {mob[7:]}", "mobile 3-4-4 spaced"),
                   (f"{mob[:3]}-{mob[3:7]}-{mob[7:]}", "mobile 3-4-4 dashed"), (f"+86 {mob[:3]} {mob[3:7]} {mob[7:]}", "+86 mobile"),
                   (f"+86-{mob}", "+86-mobile"), (f"{area}-{land}", "area-landline"), (f"({area}) {land}", "(area) landline"),
                   (f"+86 {area[1:]} {land}", "+86 area landline"), (land, "bare landline"), (f"{area}-{land}-{_digits(c, 4)}", "landline-ext")))


def g_email(c: _Ctx):
    first, last = _first_last(c, c.pick(("en_US", "en_GB", "fr_FR", "de_DE")))
    dom = c.pick(("partners.org", "mgh.harvard.edu", "bidmc.harvard.edu", "nhs.net", "gmail.com", "163.com", "qq.com",
                  "pumch.cn", "hospital.org.cn", "yahoo.co.uk", "mayo.edu", "outlook.com"))
    user = c.pick((f"{first}.{last}".lower(), f"{first[0]}{last}".lower(), _digits(c, 9), f"{last}{_digits(c, 2)}".lower(),
                   f"{first}.{last}", f"{first.lower()}_{last.lower()}+rad"))
    user = re.sub(r"[^\w.+-]", "", user.encode("ascii", "ignore").decode()) or "jdoe"
    return f"{user}@{dom}", "qq_digits" if user.isdigit() else "user@domain"


def g_url(c: _Ctx):
    dom = c.pick(("mgh.harvard.edu", "mayoclinic.org", "ruijin.com.cn", "pumch.cn", "nhs.uk", "hospital.local",
                  "radiology.example.net", "health.gov.au", "pacs.internal", "charite.de"))
    ip = ".".join(str(c.r.randint(1, 254)) for _ in range(4))
    return c.pick(((f"https://pacs.{dom}/viewer?study={_digits(c, 8)}", "https+query"), (f"http://{dom}/results", "http"),
                   (f"www.{dom}", "www."), (f"portal.{dom}", "bare domain"), (f"http://{ip}:8080/pacs", "http+ip"),
                   (ip, "bare ip"), (f"https://mychart.{dom}/", "https")))


def g_addr_us(c: _Ctx):
    num = str(c.r.randint(1, 9999))
    street = c.pick(STREETS) if c.r.random() < 0.6 else c.faker("en_US").last_name()
    addr = f"{num} {street} {c.pick(SUFFIXES)}"
    if c.r.random() < 0.3:
        addr += c.pick((", Apt 3B", ", Apt. 12", ", Unit 4", " #207", ", Suite 300"))
    fmt = "street"
    if c.r.random() < 0.6:
        addr += ", " + (c.pick(US_CITIES) if c.r.random() < 0.6 else c.faker("en_US").city())
        fmt = "street, city"
    if c.r.random() < 0.08:
        return f"PO Box {_digits(c, 4)}", "po box"
    return addr, fmt


def g_addr_uk(c: _Ctx):
    f = c.faker("en_GB")
    return f"{c.r.randint(1, 300)} {f.last_name()} {c.pick(('Road', 'Close', 'Gardens', 'Lane', 'Mews', 'Crescent'))}, " \
           f"{c.pick(('London', 'Leeds', 'Cambridge', 'Oxford', 'Bristol'))}", "uk street, town"


def g_addr_zh(c: _Ctx):
    f = c.faker("zh_CN")
    city = c.pick(ZH_CITIES) if c.r.random() < 0.6 else f.city_name()
    district = f.district() + "区"
    road = f.street_name()
    if not road.endswith(("路", "街", "道")):
        road += "路"
    prov = f.province() if c.r.random() < 0.3 else ""
    k = c.r.random()
    if k < 0.4:
        return f"{prov}{city}市{district}{road}{c.r.randint(1, 999)}号", "省市区路号"
    if k < 0.6:
        return (f"{city}市{district}{road}{c.r.randint(1, 999)}号{c.r.randint(1, 30)}栋{c.r.randint(1, 6)}单元"
                f"{c.r.randint(101, 2505)}室"), "路号栋单元室"
    if k < 0.75:
        return f"{road}{c.r.randint(1, 999)}弄{c.r.randint(1, 99)}号{c.r.randint(101, 2505)}室", "路弄号室"
    if k < 0.9:
        return f"{district}{c.pick(('望京', '阳光', '幸福', '翠湖', '金色'))}{c.pick(('花园', '小区', '家园'))}" \
               f"{c.r.randint(1, 30)}号楼{c.r.randint(101, 2505)}室", "区小区号楼室"
    return f"{f.province()}{city}市{district}{c.pick(('城关', '新华', '东风'))}镇{c.pick(('李家', '王庄', '石桥'))}村", "省市区镇村"


def g_zip_us(c: _Ctx):
    z = f"{c.r.randint(1000, 99999):05}"
    return (z, "zip5") if c.r.random() < 0.7 else (f"{z}-{_digits(c, 4)}", "zip+4")


def g_postcode_uk(c: _Ctx):
    return c.faker("en_GB").postcode(), "uk"


def g_postcode_ca(c: _Ctx):
    L = "ABCEGHJKLMNPRSTVXY"
    p = f"{c.pick(L)}{c.r.randint(0, 9)}{c.pick(L)} {c.r.randint(0, 9)}{c.pick(L)}{c.r.randint(0, 9)}"
    return (p, "canada") if c.r.random() < 0.7 else (p.replace(" ", ""), "canada nospace")


def g_postcode_zh(c: _Ctx):
    return f"{c.r.randint(10, 85)}{_digits(c, 4)}", "zh6"


def g_age_en(c: _Ctx):
    v = str(c.r.randint(90, 104))
    if c.r.random() < 0.1:
        word = c.pick(("ninety", "ninety-one", "ninety-two", "ninety-five", "ninety-seven", "one hundred"))
        return ("", word, "-year-old"), "spelled-year-old"
    pre, post = c.pick((("", "-year-old"), ("", " year old"), ("aged ", ""), ("", " yo"), ("", " y/o"), ("", "F"),
                        ("", "M"), ("age ", ""), ("", " years old"), ("", "-yr-old"), ("", " yrs"), ("", " y.o.")))
    return (pre, v, post), (pre + "N" + post).strip()


def g_age_zh(c: _Ctx):
    v = c.r.randint(90, 104)
    if c.r.random() < 0.15:
        return ("", _zh_num(v) if v < 100 else "一百", "岁"), "中文数字岁"
    pre, post = c.pick((("", "岁"), ("", "周岁"), ("", " 岁"), ("年龄", "岁")))
    return (pre, str(v), post), (pre + "N" + post)


def g_cn_id(c: _Ctx):
    area = c.pick(("110101", "110105", "310104", "310115", "440305", "330106", "510107", "420106", "610113", "320102"))
    y, m, d = c.r.randint(1925, 2015), c.r.randint(1, 12), c.r.randint(1, 28)
    body = f"{area}{y}{m:02}{d:02}{_digits(c, 3)}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(a) * w for a, w in zip(body, weights)) % 11]
    return body + check, "cn_id_X" if check == "X" else "cn_id"


def g_hosp_en(c: _Ctx):
    if c.r.random() < 0.7:
        return c.pick(EN_HOSPITALS), "list"
    last = c.faker("en_US").last_name()
    return c.pick(((f"{last} Memorial Hospital", "X Memorial Hospital"),
                   (f"{c.pick(US_CITIES)} Regional Medical Center", "X Regional Medical Center"),
                   (f"{last} Family Health", "X Family Health"), (f"St. {last}'s", "St. X's")))


def g_hosp_zh(c: _Ctx):
    if c.r.random() < 0.6:
        return c.pick(ZH_HOSPITALS), "list"
    city = c.pick(ZH_CITIES)
    return c.pick(((f"{city}市第{c.pick(ZH_ORDINALS)}人民医院", "X市第N人民医院"), (f"{city}市中医院", "X市中医院"),
                   (f"{city}大学附属第{c.pick(ZH_ORDINALS[:3])}医院", "X大学附属第N医院"),
                   (f"{c.faker('zh_CN').district()}区社区卫生服务中心", "X区社区卫生服务中心"),
                   (f"{city}市儿童医院", "X市儿童医院"), (f"{city}{c.pick(('仁爱', '博爱', '和睦家'))}医院", "private")))


def g_age_num(c: _Ctx):
    return str(c.r.randint(90, 104)), "Age: N"


# ---------------------------------------------------------------- negatives: clinical numbers that must be kept
def n_size(c: _Ctx):
    return c.pick((f"{c.r.randint(2, 30)} mm", f"{c.r.randint(2, 30)}-mm", f"{c.r.randint(2, 30)}mm",
                   f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)} cm", f"{c.r.randint(1, 9)} cm"))


def n_dims(c: _Ctx):
    a, b, d = (f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)}" for _ in range(3))
    return c.pick((f"{a[0]} x {b[0]} cm", f"{a} x {b} x {d} cm", f"{a} × {b} cm", f"{a}x{b} cm"))


def n_vert(c: _Ctx):
    lv = c.r.randint(1, 4)
    return c.pick((f"T{c.r.randint(1, 12)}", f"L{c.r.randint(1, 5)}", f"C{lv}-{lv + 1}", f"C{lv}-C{lv + 1}",
                   f"L{lv}-L{lv + 1}", f"T{lv + 7}-T{lv + 8}", "L5-S1"))


def n_views(c: _Ctx):
    return c.pick(("2 views", "two views", "3 views", "1 view", "PA and lateral (2 views)"))


def n_ratio(c: _Ctx):
    return c.pick((f"0.{c.r.randint(40, 65)}", f"{c.r.randint(40, 65)}%"))


def n_volume(c: _Ctx):
    return c.pick((f"{c.r.randint(1, 50) * 10} mL", f"{c.r.randint(1, 50) * 10} cc", f"{c.r.randint(1, 50) * 10}ml"))


def n_young_en(c: _Ctx):
    v = c.r.randint(18, 89)
    return c.pick((f"{v}-year-old", f"{v} year old", f"{v} yo", f"{v}F", f"{v}M", f"{v} y/o"))


def n_series(c: _Ctx):
    return c.pick((f"series {c.r.randint(2, 9)}, image {c.r.randint(10, 300)}", f"image {c.r.randint(10, 300)} of "
                   f"series {c.r.randint(2, 9)}", f"se {c.r.randint(2, 9)}, im {c.r.randint(10, 300)}"))


def n_dose(c: _Ctx):
    return c.pick((f"CTDIvol {c.r.randint(2, 20)}.{c.r.randint(0, 9)} mGy", f"DLP {c.r.randint(100, 900)} mGy-cm",
                   f"DLP {c.r.randint(100, 900)} mGy*cm"))


def n_interval(c: _Ctx):
    return c.pick(("3 months", "6-12 months", "24 hours", "3-6 months", "12 months", "2 weeks"))


def n_size_zh(c: _Ctx):
    return c.pick((f"{c.r.randint(2, 30)}mm", f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)}cm", f"{c.r.randint(2, 30)} mm"))


def n_dims_zh(c: _Ctx):
    return c.pick((f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)}×{c.r.randint(1, 9)}.{c.r.randint(0, 9)}cm",
                   f"{c.r.randint(1, 9)}×{c.r.randint(1, 9)} cm", f"{c.r.randint(10, 60)}mm×{c.r.randint(10, 60)}mm"))


def n_young_zh(c: _Ctx):
    return c.pick((f"{c.r.randint(18, 89)}岁", f"{c.r.randint(18, 89)} 岁"))


def n_hu(c: _Ctx):
    return c.pick((f"{c.r.randint(-100, 80)}HU", f"{c.r.randint(10, 80)} HU"))


def n_rib(c: _Ctx):
    k = c.r.randint(3, 9)
    return c.pick((f"{k}", f"{k}、{k + 1}", f"{k}-{k + 2}"))


def n_interval_zh(c: _Ctx):
    return c.pick(("3个月", "6-12个月", "1年", "3-6个月", "2周"))


def n_series_zh(c: _Ctx):
    return f"序列{c.r.randint(2, 9)}，图像{c.r.randint(10, 300)}"


# slot -> (category, generator); category None: a negative (kept), kind = slot
SLOTS = {
    "name": ("name", g_en_name), "last": ("name", g_en_last), "rname": ("name", g_en_name_rev),
    "zname": ("name", g_zh_name), "zsur": ("name", g_zh_surname), "date": ("date", g_date_en), "zdate": ("date", g_date_zh),
    "time": ("date", g_time_en), "ztime": ("date", g_time_zh), "dt": ("date", g_datetime), "mrn": ("id", g_mrn),
    "acc": ("id", g_acc), "zid": ("id", g_zh_id), "bed": ("id", g_bed), "ssn": ("id", g_ssn), "phone": ("phone", g_phone_us),
    "pager": ("phone", g_pager), "zphone": ("phone", g_phone_cn), "email": ("email", g_email), "url": ("url", g_url),
    "addr": ("address", g_addr_us), "uaddr": ("address", g_addr_uk), "zaddr": ("address", g_addr_zh),
    "zip": ("postcode", g_zip_us), "ukpc": ("postcode", g_postcode_uk), "capc": ("postcode", g_postcode_ca),
    "zpc": ("postcode", g_postcode_zh), "age": ("age", g_age_en), "zage": ("age", g_age_zh), "agenum": ("age", g_age_num),
    "cnid": ("cn_id", g_cn_id), "hosp": ("hospital", g_hosp_en), "zhosp": ("hospital", g_hosp_zh),
    "size": (None, n_size), "dims": (None, n_dims), "vert": (None, n_vert), "views": (None, n_views),
    "ratio": (None, n_ratio), "volume": (None, n_volume), "young": (None, n_young_en), "series": (None, n_series),
    "dose": (None, n_dose), "interval": (None, n_interval), "zsize": (None, n_size_zh), "zdims": (None, n_dims_zh),
    "zyoung": (None, n_young_zh), "hu": (None, n_hu), "rib": (None, n_rib), "zinterval": (None, n_interval_zh),
    "zseries": (None, n_series_zh),
}
LITERALS = {"STATE": STATES, "SEX": ("男", "女"), "ROLE": ("NP", "PA", "RN", "resident", "covering physician")}

# ---------------------------------------------------------------- templates ({slot}: after a cue word; {slot~}: bare)
EN_HEADER = (
    "Patient Name: {rname}", "PATIENT: {rname}", "Name: {name}", "Pt: {rname}", "MRN: {mrn}", "MR#: {mrn}",
    "Medical Record Number: {mrn}", "Unit No: {mrn}", "DOB: {date}", "Date of Birth: {date}", "Accession: {acc}",
    "Accession #: {acc}", "Acc No.: {acc}", "Exam Date: {date} {time}", "Study Date: {dt}",
    "Referring Physician: {name}, MD", "Ordering Provider: Dr. {name}", "Attending: {rname}", "Facility: {hosp}",
    "Location: {hosp}", "Phone: {phone}", "Fax: {phone}", "Address: {addr}, {STATE} {zip}", "SSN: {ssn}",
    "Age: {agenum}", "Sex: F", "Insurance ID: {mrn}", "Patient ID: {mrn}", "{hosp~} Department of Radiology",
)
EN_FREE = (
    "Findings were discussed with Dr. {last} at {time} on {date} by telephone.",
    "The findings were communicated to {name} by Dr. {last} at {time~} on {date~}.",
    "Dr. {last} was paged at {pager} on {date~}.",
    "ADDENDUM: Results were called to {name~} ({phone~}) at {time~} on {date~}.",
    "WET READ: {name~} {date~} {time~}  No acute cardiopulmonary process.",
    "Dictated by: {name}, MD", "Dictated by {name}", "Electronically signed by {name}, MD on {date} at {time}",
    "I, {name~}, have personally reviewed the images and agree with the findings.",
    "Resident: {name}    Attending: {name}", "{name~} is a {age} with shortness of breath.",
    "Patient is a {age} woman transferred from {hosp~}.", "Prior imaging performed at {hosp~} on {date~}.",
    "Patient lives at {addr~}, {STATE} {zip~}.", "{name~} was notified of the result.",
    "Study reviewed with {name~} in the reading room.", "Mr. {last}'s family was updated at the bedside.",
    "Emergency contact: {name} (daughter), {phone~}.", "Outside study from {hosp~}, accession {acc}.",
    "Spoke with {name~} on Tuesday, {date~}.", "{name~}  {date~}  {time~}", "PCP {name} ({phone~}).",
    "Seen in clinic by Dr. {name} on {date~}.", "Requested by {name}, {hosp~}. NHS No {ssn}.",
    "Home address: {uaddr} {ukpc~}.", "Postal code: {capc}.", "Forwarding address: {addr}, ON {capc~}.",
    "Zip code: {zip}.", "Please call {phone} with any questions.", "Reading room: {phone~}.",
    "Fax results to {phone}.", "Callback number {phone}.", "{name~} can be reached at {phone~}.",
    "Full report and images: {url~}.", "Questions: {email~}.", "Report sent to {email~} on {date~}.",
    "Images uploaded to {url~} (ref {acc~}).", "Comparison: {date~}.",
    "COMPARISON: Chest radiograph {date~} and CT {date~}.", "Exam performed {dt~}.",
    "The study was performed at {time~} and reviewed at {time~}.",
    "Patient ID {mrn} and accession {acc} were verified.", "Outside films ({acc~}) were reviewed.",
    "Device serial number {mrn}.", "History: {age~} with fall.", "{age~}, ICU day 3.",
    "Patient's daughter {name~} requested a copy.", "Discussed with {name~}, {ROLE}, on {date~}.",
    "Per {name~}, the line was repositioned at {time~}.", "Images were transferred from {hosp~} via {url~}.",
    "Contact the radiology department at {hosp~}, {phone~}.", "Workstation {url~} was used for 3D reconstruction.",
    "{name~} {phone~}", "Pager {pager}", "Beeper #{pager}",
)
EN_CLINICAL = (
    "There is a {size} nodule in the right upper lobe ({series}).", "A {dims} mass is seen in the left lower lobe.",
    "Mild compression deformity of {vert} is unchanged.", "Chest, {views}.", "The cardiothoracic ratio is {ratio}.",
    "Small right pleural effusion, estimated {volume}.", "Endotracheal tube tip is {size} above the carina.",
    "Nodule measures {size} ({series}).", "CT dose: {dose}.", "Follow-up CT in {interval} is recommended.",
    "{young} man with cough.", "The patient is a {young} woman with fever.",
    "The {size} nodule is unchanged since {date~}.", "Compared to {date~}, the effusion has increased.",
    "Degenerative changes at {vert} and {vert}.", "Right IJ catheter tip is {size} below the cavoatrial junction.",
)
IU_LINES = ("XXXX-year-old male with chest pain.", "The heart size is normal. XXXX are intact.", "Comparison: XXXX, XXXX.",
            "No pneumothorax. Degenerative changes of the XXXX spine.", "Indication: XXXX. Findings: XXXX.")
ZH_HEADER = (
    "姓名：{zname}", "性别：{SEX}", "年龄：{agenum}岁", "年龄：{zyoung}", "病历号：{zid}", "住院号：{zid}", "检查号：{zid}",
    "门诊号：{zid}", "影像号：{zid}", "床号：{bed}", "科室：呼吸内科", "申请医师：{zname}", "报告医师：{zname}",
    "审核医师：{zname}", "报告日期：{zdate}", "检查日期：{zdate} {ztime}", "联系电话：{zphone}", "地址：{zaddr}",
    "身份证号：{cnid}", "邮编：{zpc}", "送检医院：{zhosp}", "{zhosp~}放射科诊断报告", "{zhosp~}医学影像科 CT检查报告单",
)
ZH_FREE = (
    "已电话通知{zname}医师，时间{zdate~} {ztime~}。", "结果已告知患者家属{zname}。", "患者{zname}，{SEX}，{zage~}，因咳嗽3天入院。",
    "外院（{zhosp~}）CT示右肺结节。", "请联系{zname}，电话{zphone}。", "报告医师：{zname}  审核医师：{zname}  {zdate~}",
    "{zname~}，{zdate~}。", "患者住{zaddr~}。", "详见{url~}。", "邮箱：{email}", "复查请至{zhosp~}。", "{zname~}医生已知晓。",
    "已电话通知{zsur}医生。", "由{zname~}复核。", "{zname~}的家属要求复印报告。", "患者于{zdate~}在{zhosp~}行胸部CT检查。",
    "紧急联系人：{zname}（女儿），{zphone}。", "可拨打{zphone~}咨询。", "患者{zname}（{cnid~}）。", "住院号{zid}，床号{bed}。",
    "邮寄地址：{zaddr}，邮编{zpc}。", "{zaddr~} {zpc~}", "{zage~}，高龄，建议随访。", "检查时间：{zdate} {ztime}",
    "转诊自{zhosp~}，原检查号{zid}。", "Dr. {last}会诊意见已记录。", "证件号码：{cnid}", "{zname~} {zphone~}",
    "{zdate~} {ztime~} 已与临床沟通。", "传真：{zphone}", "分机{pager}",
)
ZH_CLINICAL = (
    "右肺上叶见约{zsize}结节。", "左肺下叶见大小约{zdims}肿块。", "{vert}椎体压缩性改变。", "心胸比约{ratio}。",
    "右侧胸腔少量积液，约{volume}。", "病灶CT值约{hu}。", "右侧第{rib}肋骨陈旧性骨折。", "层厚{zsize}重建。",
    "建议{zinterval}后复查。", "患者{zyoung}，咳嗽。", "与{zdate~}片比较，结节大小约{zsize}，变化不大。", "结节（{zseries}）边缘光整。",
)
# Clinical sentences outside the repository's phrase list (which a scrubber may whitelist): eponyms, devices and
# capitalised terms that look like names; Chinese words that begin with a surname character (高, 石, 毛, 金, 包, 方...).
EN_OTHER = (
    "Kerley B lines are present.", "A Swan-Ganz catheter terminates in the right pulmonary artery.",
    "Dobhoff tube tip is in the stomach.", "Port-A-Cath tip projects over the SVC.", "Hampton hump is suspected.",
    "Westermark sign is not seen.", "Findings are compatible with a Pancoast tumor.", "Morgagni hernia is unchanged.",
    "Known Hodgkin lymphoma.", "History of Wegener granulomatosis.", "Schmorl nodes in the thoracic spine.",
    "Median sternotomy wires and CABG clips are intact.", "Left chest wall AICD with leads in the right ventricle.",
    "Harrington rods are noted.", "Greenfield filter projects over the IVC.", "Right Hickman catheter is unchanged.",
    "Chilaiditi sign is noted.", "Per Fleischner Society guidelines, no follow-up is needed.", "Lung-RADS category 2.",
    "Mild Bibasilar Atelectasis.", "Aortic knob calcification.", "Osteopenia.", "Healed Left Rib Fractures.",
    "Impella device is in place.", "PleurX catheter in the right pleural space.", "Severe Paget disease of the spine.",
    "Known Crohn disease.", "Parkinson disease, aspiration risk.", "Watchman device is noted.",
    "Mediport tip at the cavoatrial junction.", "Azygos fissure, a normal variant.", "Bochdalek hernia on the left.",
)
ZH_OTHER = (
    "右肺下叶见高密度影。", "双肺纹理增粗。", "主动脉弓钙化。", "右肺上叶磨玻璃影。", "考虑石棉沉着病可能。", "病灶边缘毛糙。",
    "左侧胸膜增厚粘连。", "左侧包裹性积液。", "右侧锁骨见金属固定器影。", "建议结合临床，方可排除肺结核。", "纵隔淋巴结未见肿大。",
    "支气管充气征阳性。", "双肺下叶蜂窝状改变。", "右肺门影增大。", "肺动脉段平直。", "考虑克雷伯菌肺炎。", "霍奇金淋巴瘤治疗后复查。",
    "马方综合征术后改变。", "钟形胸廓。", "左肺见管状透亮影。", "双肺多发肺大疱。", "纵隔气肿。", "常规随访复查。",
    "心影向两侧扩大，呈普大型。", "胸廓对称，气管居中。", "易漏诊的小结节需随访。", "左心室增大。", "骨质疏松。",
)
_SLOT = re.compile(r"(\{[A-Za-z]+~?\})")
_CLINICAL_TOKEN = re.compile(r"[A-Za-z]{2,}|[\u4e00-\u9fff]")
_PLACEHOLDER = re.compile(r"_{3}|X{4}")


class _Doc:
    """A report being written: text pieces and the spans recorded as they are appended."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.planted: list[dict] = []
        self.negatives: list[dict] = []
        self.clinical: list[tuple[int, int]] = []
        self.clinical_other: list[tuple[int, int]] = []  # the subset from EN_OTHER / ZH_OTHER
        self.placeholders: list[tuple[int, int]] = []

    def add(self, text: str, clinical: bool = False, other: bool = False) -> None:
        for m in _PLACEHOLDER.finditer(text):
            self.placeholders.append((self.pos + m.start(), self.pos + m.end()))
        if clinical:
            tokens = [(self.pos + m.start(), self.pos + m.end()) for m in _CLINICAL_TOKEN.finditer(text)
                      if not _PLACEHOLDER.fullmatch(m.group()) and m.group() != "XXXX"]
            self.clinical += tokens
            if other:
                self.clinical_other += tokens
        self.parts.append(text)
        self.pos += len(text)

    def render(self, c: _Ctx, template: str, clinical: bool = False, upper: bool = False) -> None:
        for piece in _SLOT.split(template):
            if not (piece.startswith("{") and piece.endswith("}")):
                self.add(piece.upper() if upper else piece, clinical)
                continue
            slot, cue = piece[1:-1].rstrip("~"), not piece.endswith("~}")
            if slot in LITERALS:
                self.add(c.pick(LITERALS[slot]))
                continue
            category, gen = SLOTS[slot]
            if category is None:
                value = gen(c)
                self.negatives.append({"start": self.pos, "end": self.pos + len(value), "kind": slot, "value": value})
                self.add(value)
                continue
            out = gen(c)
            value, fmt = out[0], out[1]
            pre, value, post = value if isinstance(value, tuple) else ("", value, "")
            self.add(pre)
            item = {"start": self.pos, "end": self.pos + len(value), "category": category, "value": value,
                    "format": f"{slot}:{fmt}", "cue": cue or bool(pre)}
            if len(out) > 2:
                item["locale"] = out[2]
            self.planted.append(item)
            self.add(value)
            self.add(post)

    def text(self) -> str:
        return "".join(self.parts)


def _one(c: _Ctx, language: str) -> dict:
    mentions = mention(c.np, sample_present(c.np, sample_risk(c.np)))
    if language == "en":
        base = english(c.pick(("CHEST (PA AND LAT)", "CHEST (PORTABLE AP)", "CT CHEST W/O CONTRAST")), mentions, c.np)
        header, free, clin, other = EN_HEADER, EN_FREE, EN_CLINICAL, EN_OTHER
    else:
        base, header, free, clin, other = chinese(mentions), ZH_HEADER, ZH_FREE, ZH_CLINICAL, ZH_OTHER
    lines = base.rstrip("\n").split("\n")
    # Items: ("lit", text) base lines; ("tpl", template, clinical, upper) rendered lines.
    items: list[tuple] = [("lit", line) for line in lines]
    inserts = [("tpl", t, True, False) for t in c.r.sample(clin, c.r.randint(1, 3))]
    inserts += [("tpl", t, False, False) for t in c.r.sample(free, c.r.randint(2, 5))]
    inserts += [("other", " ".join(c.r.sample(other, c.r.randint(1, 3))))]
    for item in inserts:  # mostly between paragraphs, sometimes inside one (a wet read pasted mid-report)
        gaps = [i for i in range(1, len(items) + 1) if i == len(items) or items[i - 1] == ("lit", "")]
        items.insert(c.pick(gaps) if c.r.random() < 0.8 else c.r.randint(1, len(items)), item)
    if language == "en" and c.r.random() < 0.3:
        items.insert(c.r.randint(1, len(items)), ("lit", " ".join(c.r.sample(IU_LINES, 2))))
    if c.r.random() < 0.65:
        upper = language == "en" and c.r.random() < 0.3
        head = [("tpl", t, False, upper) for t in c.r.sample(header, c.r.randint(3, 8))]
        if language == "zh" and c.r.random() < 0.5:  # several fields on one line
            head = [("row", head)]
        items = head + items
    doc = _Doc()
    for item in items:
        if item[0] == "lit":
            doc.add(item[1], clinical=True)
        elif item[0] == "other":
            doc.add((" " if language == "en" else "") + item[1].replace(" ", "" if language == "zh" else " "),
                    clinical=True, other=True)
        elif item[0] == "tpl":
            doc.render(c, item[1], clinical=item[2], upper=item[3])
        else:
            for k, sub in enumerate(item[1]):
                doc.render(c, sub[1])
                doc.add("  " if k < len(item[1]) - 1 else "")
        doc.add("\n")
    return {"language": language, "text": doc.text(), "planted": doc.planted, "clinical": doc.clinical,
            "clinical_other": doc.clinical_other, "negatives": doc.negatives, "placeholders": doc.placeholders}


def build_corpus(n: int, seed: int = 0) -> list[dict]:
    """``n`` labelled reports, about half English and half Chinese; the same (n, seed) gives the same corpus."""
    c = _Ctx(seed)
    return [_one(c, "en" if c.r.random() < 0.5 else "zh") for _ in range(n)]
