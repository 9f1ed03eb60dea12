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

import re


import scrub_values as v  # bench/ is on the path when the bench or its test runs
from scrub_values import CORE_LOCALES  # noqa: F401 - scrub_bench reads it from here
from sim.synth.labels import mention, sample_present, sample_risk
from sim.synth.reports import chinese, english


# ---------------------------------------------------------------- negatives: clinical numbers that must be kept
def n_size(c: v.Ctx):
    return c.pick((f"{c.r.randint(2, 30)} mm", f"{c.r.randint(2, 30)}-mm", f"{c.r.randint(2, 30)}mm",
                   f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)} cm", f"{c.r.randint(1, 9)} cm"))


def n_dims(c: v.Ctx):
    a, b, d = (f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)}" for _ in range(3))
    return c.pick((f"{a[0]} x {b[0]} cm", f"{a} x {b} x {d} cm", f"{a} × {b} cm", f"{a}x{b} cm"))


def n_vert(c: v.Ctx):
    lv = c.r.randint(1, 4)
    return c.pick((f"T{c.r.randint(1, 12)}", f"L{c.r.randint(1, 5)}", f"C{lv}-{lv + 1}", f"C{lv}-C{lv + 1}",
                   f"L{lv}-L{lv + 1}", f"T{lv + 7}-T{lv + 8}", "L5-S1"))


def n_views(c: v.Ctx):
    return c.pick(("2 views", "two views", "3 views", "1 view", "PA and lateral (2 views)"))


def n_ratio(c: v.Ctx):
    return c.pick((f"0.{c.r.randint(40, 65)}", f"{c.r.randint(40, 65)}%"))


def n_volume(c: v.Ctx):
    return c.pick((f"{c.r.randint(1, 50) * 10} mL", f"{c.r.randint(1, 50) * 10} cc", f"{c.r.randint(1, 50) * 10}ml"))


def n_young_en(c: v.Ctx):
    v = c.r.randint(18, 89)
    return c.pick((f"{v}-year-old", f"{v} year old", f"{v} yo", f"{v}F", f"{v}M", f"{v} y/o"))


def n_series(c: v.Ctx):
    return c.pick((f"series {c.r.randint(2, 9)}, image {c.r.randint(10, 300)}", f"image {c.r.randint(10, 300)} of "
                   f"series {c.r.randint(2, 9)}", f"se {c.r.randint(2, 9)}, im {c.r.randint(10, 300)}"))


def n_dose(c: v.Ctx):
    return c.pick((f"CTDIvol {c.r.randint(2, 20)}.{c.r.randint(0, 9)} mGy", f"DLP {c.r.randint(100, 900)} mGy-cm",
                   f"DLP {c.r.randint(100, 900)} mGy*cm"))


def n_interval(c: v.Ctx):
    return c.pick(("3 months", "6-12 months", "24 hours", "3-6 months", "12 months", "2 weeks"))


def n_size_zh(c: v.Ctx):
    return c.pick((f"{c.r.randint(2, 30)}mm", f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)}cm", f"{c.r.randint(2, 30)} mm"))


def n_dims_zh(c: v.Ctx):
    return c.pick((f"{c.r.randint(1, 9)}.{c.r.randint(0, 9)}×{c.r.randint(1, 9)}.{c.r.randint(0, 9)}cm",
                   f"{c.r.randint(1, 9)}×{c.r.randint(1, 9)} cm", f"{c.r.randint(10, 60)}mm×{c.r.randint(10, 60)}mm"))


def n_young_zh(c: v.Ctx):
    return c.pick((f"{c.r.randint(18, 89)}岁", f"{c.r.randint(18, 89)} 岁"))


def n_hu(c: v.Ctx):
    return c.pick((f"{c.r.randint(-100, 80)}HU", f"{c.r.randint(10, 80)} HU"))


def n_rib(c: v.Ctx):
    k = c.r.randint(3, 9)
    return c.pick((f"{k}", f"{k}、{k + 1}", f"{k}-{k + 2}"))


def n_interval_zh(c: v.Ctx):
    return c.pick(("3个月", "6-12个月", "1年", "3-6个月", "2周"))


def n_series_zh(c: v.Ctx):
    return f"序列{c.r.randint(2, 9)}，图像{c.r.randint(10, 300)}"


# slot -> (category, generator); category None: a negative (kept), kind = slot
SLOTS = {
    "name": ("name", v.g_en_name), "last": ("name", v.g_en_last), "rname": ("name", v.g_en_name_rev),
    "zname": ("name", v.g_zh_name), "zsur": ("name", v.g_zh_surname), "date": ("date", v.g_date_en), "zdate": ("date", v.g_date_zh),
    "time": ("date", v.g_time_en), "ztime": ("date", v.g_time_zh), "dt": ("date", v.g_datetime), "mrn": ("id", v.g_mrn),
    "acc": ("id", v.g_acc), "zid": ("id", v.g_zh_id), "bed": ("id", v.g_bed), "ssn": ("id", v.g_ssn), "phone": ("phone", v.g_phone_us),
    "pager": ("phone", v.g_pager), "zphone": ("phone", v.g_phone_cn), "email": ("email", v.g_email), "url": ("url", v.g_url),
    "addr": ("address", v.g_addr_us), "uaddr": ("address", v.g_addr_uk), "zaddr": ("address", v.g_addr_zh),
    "zip": ("postcode", v.g_zip_us), "ukpc": ("postcode", v.g_postcode_uk), "capc": ("postcode", v.g_postcode_ca),
    "zpc": ("postcode", v.g_postcode_zh), "age": ("age", v.g_age_en), "zage": ("age", v.g_age_zh), "agenum": ("age", v.g_age_num),
    "cnid": ("cn_id", v.g_cn_id), "hosp": ("hospital", v.g_hosp_en), "zhosp": ("hospital", v.g_hosp_zh),
    "size": (None, n_size), "dims": (None, n_dims), "vert": (None, n_vert), "views": (None, n_views),
    "ratio": (None, n_ratio), "volume": (None, n_volume), "young": (None, n_young_en), "series": (None, n_series),
    "dose": (None, n_dose), "interval": (None, n_interval), "zsize": (None, n_size_zh), "zdims": (None, n_dims_zh),
    "zyoung": (None, n_young_zh), "hu": (None, n_hu), "rib": (None, n_rib), "zinterval": (None, n_interval_zh),
    "zseries": (None, n_series_zh),
}
LITERALS = {"STATE": v.STATES, "SEX": ("男", "女"), "ROLE": ("NP", "PA", "RN", "resident", "covering physician")}

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

    def render(self, c: v.Ctx, template: str, clinical: bool = False, upper: bool = False) -> None:
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


def _one(c: v.Ctx, language: str) -> dict:
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
    c = v.Ctx(seed)
    return [_one(c, "en" if c.r.random() < 0.5 else "zh") for _ in range(n)]
