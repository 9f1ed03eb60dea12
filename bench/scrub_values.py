"""The identifiers the scrubber corpus plants (``bench/scrub_corpus.py``), one generator per format.

Each generator takes the corpus's random sources (``Ctx``) and returns ``value`` or ``(pre, value,
post)`` with the format's name; ``bench/scrub_corpus.py`` maps template slots to them (``SLOTS``).
"""
from __future__ import annotations

import random
import re

import numpy as np
from faker import Faker


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


class Ctx:
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
def _latin_locale(c: Ctx) -> str:
    return c.pick(("en_US", "en_US", "en_GB")) if c.r.random() < 0.5 else c.pick(OTHER_LOCALES)


def _first_last(c: Ctx, locale: str) -> tuple[str, str]:
    f = c.faker(locale)
    return " ".join(f.first_name().split()), " ".join(f.last_name().split())


def g_en_name(c: Ctx):
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


def g_en_last(c: Ctx):
    locale = _latin_locale(c)
    return _first_last(c, locale)[1], "last_only", locale


def g_en_name_rev(c: Ctx):
    locale = _latin_locale(c)
    first, last = _first_last(c, locale)
    k = c.r.random()
    if k < 0.5:
        return f"{last.upper()}, {first.upper()}", "LAST_FIRST_caps", locale
    if k < 0.85:
        return f"{last}, {first}", "last_first", locale
    return f"{last.upper()}^{first.upper()}", "dicom_caret", locale


def g_zh_name(c: Ctx):
    k = c.r.random()
    if k < 0.7:
        locale = "zh_CN" if k < 0.5 else "zh_TW"
        name = c.faker(locale).name()
        return name, f"zh_{len(name)}char", locale
    surname = c.pick(ZH_RARE_SURNAMES)
    given = "".join(c.pick(ZH_GIVEN_CHARS) for _ in range(c.pick((1, 2, 2))))
    return surname + given, f"zh_rare_{len(surname)}+{len(given)}", "zh_synth"


def g_zh_surname(c: Ctx):
    return c.faker("zh_CN").last_name(), "zh_surname_only", "zh_CN"


def _ymd(c: Ctx) -> tuple[int, int, int]:
    return c.r.randint(1925, 2024), c.r.randint(1, 12), c.r.randint(1, 28)


def _ordinal(d: int) -> str:
    return f"{d}{'th' if 10 <= d % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(d % 10, 'th')}"


def g_date_en(c: Ctx):
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


def g_date_zh(c: Ctx):
    y, m, d = _ymd(c)
    fmts = {"y年m月d日": f"{y}年{m}月{d}日", "y年mm月dd日": f"{y}年{m:02}月{d:02}日", "m月d日": f"{m}月{d}日",
            "m月d号": f"{m}月{d}号", "中文数字年月日": f"{_zh_num(y, True)}年{_zh_num(m)}月{_zh_num(d)}日",
            "yyyy-mm-dd": f"{y}-{m:02}-{d:02}", "yyyy.m.d": f"{y}.{m}.{d}", "yyyy/mm/dd": f"{y}/{m:02}/{d:02}",
            "y年m月": f"{y}年{m}月", "yyyymmdd": f"{y}{m:02}{d:02}", "y年m月d日(spaced)": f"{y} 年 {m} 月 {d} 日"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def g_time_en(c: Ctx):
    h, mi, s = c.r.randint(0, 23), c.r.randint(0, 59), c.r.randint(0, 59)
    h12, ap = (h % 12 or 12), ("am" if h < 12 else "pm")
    fmts = {"HH:MM": f"{h:02}:{mi:02}", "HH:MM:SS": f"{h:02}:{mi:02}:{s:02}", "h:mm pm": f"{h12}:{mi:02} {ap}",
            "h:mm PM": f"{h12}:{mi:02} {ap.upper()}", "h:mm p.m.": f"{h12}:{mi:02} {ap[0]}.m.", "h pm": f"{h12} {ap}",
            "HHMM hours": ("", f"{h:02}{mi:02}", " hours"), "h:mmPM": f"{h12}:{mi:02}{ap.upper()}"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def g_time_zh(c: Ctx):
    h, mi = c.r.randint(0, 23), c.r.randint(0, 59)
    part = "凌晨" if h < 6 else "上午" if h < 12 else "下午" if h < 18 else "晚上"
    fmts = {"HH:MM": f"{h:02}:{mi:02}", "HH：MM(fullwidth)": f"{h:02}：{mi:02}", "H时M分": f"{h}时{mi}分",
            "下午h点m分": f"{part}{h % 12 or 12}点{mi}分", "上午h点": f"{part}{h % 12 or 12}点", "H点": f"{h}点"}
    fmt = c.pick(list(fmts))
    return fmts[fmt], fmt


def g_datetime(c: Ctx):
    y, m, d = _ymd(c)
    h, mi = c.r.randint(0, 23), c.r.randint(0, 59)
    return c.pick(((f"{y}-{m:02}-{d:02} {h:02}:{mi:02}", "iso_datetime"),
                   (f"{y}-{m:02}-{d:02}T{h:02}:{mi:02}:00", "iso_T_datetime"),
                   (f"{m:02}/{d:02}/{y} {h:02}:{mi:02}", "us_datetime")))


def _digits(c: Ctx, n: int) -> str:
    return "".join(str(c.r.randint(0, 9)) for _ in range(n))


def g_mrn(c: Ctx):
    n = c.r.randint(5, 10)
    return c.pick(((_digits(c, n), f"digits{n}"), ("000" + _digits(c, 6), "zero_padded"),
                   (c.pick("AEMP") + _digits(c, 7), "letter+7digits"), ("MR" + _digits(c, 6), "MR+digits"),
                   (f"{_digits(c, 2)}-{_digits(c, 3)}-{_digits(c, 3)}", "dd-ddd-ddd"),
                   (c.pick(("BWH", "MGH", "BID")) + "-" + _digits(c, 7), "SITE-digits")))


def g_acc(c: Ctx):
    return c.pick(((_digits(c, 8), "digits8"), ("E" + _digits(c, 8), "E+digits"),
                   (f"RAD-{c.r.randint(2005, 2024)}-{_digits(c, 6)}", "RAD-yyyy-n"),
                   (f"CT{c.r.randint(2005, 2024)}{_digits(c, 4)}-{_digits(c, 4)}", "CTyyyymmdd-n"),
                   ("ACC" + _digits(c, 6), "ACC+digits"), (f"{_digits(c, 4)}-{_digits(c, 4)}", "dddd-dddd"),
                   (_digits(c, 4) + c.pick("ABCXYZ") + _digits(c, 3), "digits+letter+digits")))


def g_zh_id(c: Ctx):
    return c.pick(((_digits(c, c.r.randint(6, 12)), "digits"), ("ZY" + _digits(c, 8), "ZY+digits"),
                   ("CT" + _digits(c, 10), "CT+digits"), (f"MR{c.r.randint(2005, 2024)}-{_digits(c, 5)}", "MRyyyy-n"),
                   ("P" + _digits(c, 8), "P+digits"), ("DR" + _digits(c, 11), "DR+digits")))


def g_bed(c: Ctx):
    return str(c.r.randint(1, 60)), "bed_number"


def g_ssn(c: Ctx):
    return c.pick(((f"{_digits(c, 3)}-{_digits(c, 2)}-{_digits(c, 4)}", "ssn"),
                   (f"{_digits(c, 3)} {_digits(c, 3)} {_digits(c, 4)}", "nhs_number")))


def g_phone_us(c: Ctx):
    a, b, d = c.r.randint(201, 989), c.r.randint(200, 999), _digits(c, 4)
    return c.pick(((f"({a}) {b}-{d}", "(aaa) bbb-dddd"), (f"{a}-{b}-{d}", "aaa-bbb-dddd"), (f"{a}.{b}.{d}", "aaa.bbb.dddd"),
                   (f"{a} {b} {d}", "aaa bbb dddd"), (f"+1 {a} {b} {d}", "+1 spaced"), (f"+1-{a}-{b}-{d}", "+1-dashed"),
                   (f"1-800-{b}-{d}", "1-800"), (f"{a}-{b}-{d} x{_digits(c, 4)}", "x-extension"),
                   (f"{a}-{b}-{d} ext. {_digits(c, 3)}", "ext.-extension"), (f"{a}{b}{d}", "10digits"),
                   (f"{b}-{d}", "7digit-local"), (f"+44 20 {_digits(c, 4)} {_digits(c, 4)}", "uk+44"),
                   (f"0{_digits(c, 4)} {_digits(c, 6)}", "uk-national")))


def g_pager(c: Ctx):
    return c.pick(((_digits(c, 5), "pager5"), (f"{c.r.randint(1, 9)}-{_digits(c, 4)}", "pager d-dddd"),
                   ("#" + _digits(c, 5), "pager #ddddd"), (_digits(c, 4), "ext4")))


def g_phone_cn(c: Ctx):
    mob = c.pick("3456789") + _digits(c, 9)
    mob = "1" + mob
    area = c.pick(("010", "021", "020", "0755", "0571", "028", "027"))
    land = _digits(c, 8 if len(area) == 3 else c.pick((7, 8)))
    return c.pick(((mob, "mobile11"), (f"{mob[:3]} {mob[3:7]} {mob[7:]}", "mobile 3-4-4 spaced"),
                   (f"{mob[:3]}-{mob[3:7]}-{mob[7:]}", "mobile 3-4-4 dashed"), (f"+86 {mob[:3]} {mob[3:7]} {mob[7:]}", "+86 mobile"),
                   (f"+86-{mob}", "+86-mobile"), (f"{area}-{land}", "area-landline"), (f"({area}) {land}", "(area) landline"),
                   (f"+86 {area[1:]} {land}", "+86 area landline"), (land, "bare landline"), (f"{area}-{land}-{_digits(c, 4)}", "landline-ext")))


def g_email(c: Ctx):
    first, last = _first_last(c, c.pick(("en_US", "en_GB", "fr_FR", "de_DE")))
    dom = c.pick(("partners.org", "mgh.harvard.edu", "bidmc.harvard.edu", "nhs.net", "gmail.com", "163.com", "qq.com",
                  "pumch.cn", "hospital.org.cn", "yahoo.co.uk", "mayo.edu", "outlook.com"))
    user = c.pick((f"{first}.{last}".lower(), f"{first[0]}{last}".lower(), _digits(c, 9), f"{last}{_digits(c, 2)}".lower(),
                   f"{first}.{last}", f"{first.lower()}_{last.lower()}+rad"))
    user = re.sub(r"[^\w.+-]", "", user.encode("ascii", "ignore").decode()) or "jdoe"
    return f"{user}@{dom}", "qq_digits" if user.isdigit() else "user@domain"


def g_url(c: Ctx):
    dom = c.pick(("mgh.harvard.edu", "mayoclinic.org", "ruijin.com.cn", "pumch.cn", "nhs.uk", "hospital.local",
                  "radiology.example.net", "health.gov.au", "pacs.internal", "charite.de"))
    ip = ".".join(str(c.r.randint(1, 254)) for _ in range(4))
    return c.pick(((f"https://pacs.{dom}/viewer?study={_digits(c, 8)}", "https+query"), (f"http://{dom}/results", "http"),
                   (f"www.{dom}", "www."), (f"portal.{dom}", "bare domain"), (f"http://{ip}:8080/pacs", "http+ip"),
                   (ip, "bare ip"), (f"https://mychart.{dom}/", "https")))


def g_addr_us(c: Ctx):
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


def g_addr_uk(c: Ctx):
    f = c.faker("en_GB")
    return f"{c.r.randint(1, 300)} {f.last_name()} {c.pick(('Road', 'Close', 'Gardens', 'Lane', 'Mews', 'Crescent'))}, " \
           f"{c.pick(('London', 'Leeds', 'Cambridge', 'Oxford', 'Bristol'))}", "uk street, town"


def g_addr_zh(c: Ctx):
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


def g_zip_us(c: Ctx):
    z = f"{c.r.randint(1000, 99999):05}"
    return (z, "zip5") if c.r.random() < 0.7 else (f"{z}-{_digits(c, 4)}", "zip+4")


def g_postcode_uk(c: Ctx):
    return c.faker("en_GB").postcode(), "uk"


def g_postcode_ca(c: Ctx):
    L = "ABCEGHJKLMNPRSTVXY"
    p = f"{c.pick(L)}{c.r.randint(0, 9)}{c.pick(L)} {c.r.randint(0, 9)}{c.pick(L)}{c.r.randint(0, 9)}"
    return (p, "canada") if c.r.random() < 0.7 else (p.replace(" ", ""), "canada nospace")


def g_postcode_zh(c: Ctx):
    return f"{c.r.randint(10, 85)}{_digits(c, 4)}", "zh6"


def g_age_en(c: Ctx):
    v = str(c.r.randint(90, 104))
    if c.r.random() < 0.1:
        word = c.pick(("ninety", "ninety-one", "ninety-two", "ninety-five", "ninety-seven", "one hundred"))
        return ("", word, "-year-old"), "spelled-year-old"
    pre, post = c.pick((("", "-year-old"), ("", " year old"), ("aged ", ""), ("", " yo"), ("", " y/o"), ("", "F"),
                        ("", "M"), ("age ", ""), ("", " years old"), ("", "-yr-old"), ("", " yrs"), ("", " y.o.")))
    return (pre, v, post), (pre + "N" + post).strip()


def g_age_zh(c: Ctx):
    v = c.r.randint(90, 104)
    if c.r.random() < 0.15:
        return ("", _zh_num(v) if v < 100 else "一百", "岁"), "中文数字岁"
    pre, post = c.pick((("", "岁"), ("", "周岁"), ("", " 岁"), ("年龄", "岁")))
    return (pre, str(v), post), (pre + "N" + post)


def g_cn_id(c: Ctx):
    area = c.pick(("110101", "110105", "310104", "310115", "440305", "330106", "510107", "420106", "610113", "320102"))
    y, m, d = c.r.randint(1925, 2015), c.r.randint(1, 12), c.r.randint(1, 28)
    body = f"{area}{y}{m:02}{d:02}{_digits(c, 3)}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(a) * w for a, w in zip(body, weights)) % 11]
    return body + check, "cn_id_X" if check == "X" else "cn_id"


def g_hosp_en(c: Ctx):
    if c.r.random() < 0.7:
        return c.pick(EN_HOSPITALS), "list"
    last = c.faker("en_US").last_name()
    return c.pick(((f"{last} Memorial Hospital", "X Memorial Hospital"),
                   (f"{c.pick(US_CITIES)} Regional Medical Center", "X Regional Medical Center"),
                   (f"{last} Family Health", "X Family Health"), (f"St. {last}'s", "St. X's")))


def g_hosp_zh(c: Ctx):
    if c.r.random() < 0.6:
        return c.pick(ZH_HOSPITALS), "list"
    city = c.pick(ZH_CITIES)
    return c.pick(((f"{city}市第{c.pick(ZH_ORDINALS)}人民医院", "X市第N人民医院"), (f"{city}市中医院", "X市中医院"),
                   (f"{city}大学附属第{c.pick(ZH_ORDINALS[:3])}医院", "X大学附属第N医院"),
                   (f"{c.faker('zh_CN').district()}区社区卫生服务中心", "X区社区卫生服务中心"),
                   (f"{city}市儿童医院", "X市儿童医院"), (f"{city}{c.pick(('仁爱', '博爱', '和睦家'))}医院", "private")))


def g_age_num(c: Ctx):
    return str(c.r.randint(90, 104)), "Age: N"
