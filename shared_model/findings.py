"""The CheXpert findings and the sentences that name them in each language.

One table serves the zero-shot prompts (positive / negative per finding and language) and the
synthetic report generator, so the words a model is scored on are words a radiologist writes.
"""
from __future__ import annotations

from dataclasses import dataclass

# The 14 CheXpert label columns, in the order of mimic-cxr-2.0.0-chexpert.csv.
CHEXPERT_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
    "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
    "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
)

# Findings scored by zero-shot AUC by default: those with an image trace in the synthetic
# data and enough prevalence to give a stable AUC on a few hundred test images.
DEFAULT_EVAL_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Lung Lesion",
    "Pleural Effusion", "Pneumothorax", "Support Devices",
)

LANGUAGES: tuple[str, ...] = ("en", "zh")


@dataclass(frozen=True)
class Phrases:
    """How one finding is written: positive, negative and uncertain mentions."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    uncertain: tuple[str, ...]


PHRASES: dict[str, dict[str, Phrases]] = {
    "en": {
        "Atelectasis": Phrases(
            ("There is bibasilar atelectasis.", "Mild bibasilar atelectasis is seen."),
            ("No atelectasis.",), ("Possible bibasilar atelectasis.",)),
        "Cardiomegaly": Phrases(
            ("The heart is enlarged.", "There is moderate cardiomegaly."),
            ("The heart size is normal.", "Heart size is within normal limits."),
            ("The heart is possibly mildly enlarged.",)),
        "Consolidation": Phrases(
            ("There is a focal consolidation in the right lower lobe.",
             "Right lower lobe consolidation is present."),
            ("No focal consolidation.",), ("Possible right lower lobe consolidation.",)),
        "Edema": Phrases(
            ("There is mild pulmonary edema.", "Mild interstitial edema is present."),
            ("No pulmonary edema.",), ("Possible mild pulmonary edema.",)),
        "Enlarged Cardiomediastinum": Phrases(
            ("The mediastinum is widened.",), ("The mediastinal contours are normal.",),
            ("The mediastinum may be widened.",)),
        "Fracture": Phrases(
            ("There is a displaced left rib fracture.",), ("No acute fracture.",),
            ("Possible left rib fracture.",)),
        "Lung Lesion": Phrases(
            ("There is a nodule in the left upper lobe.", "A left upper lobe nodule is seen."),
            ("No pulmonary nodules.",), ("Possible left upper lobe nodule.",)),
        "Pleural Effusion": Phrases(
            ("There is a small left pleural effusion.", "A small left effusion is present."),
            ("No pleural effusion.",), ("Possible small left pleural effusion.",)),
        "Pleural Other": Phrases(
            ("There is right pleural thickening.",), ("No pleural thickening.",),
            ("Possible right pleural thickening.",)),
        "Pneumonia": Phrases(
            ("Findings are concerning for pneumonia.",), ("No evidence of pneumonia.",),
            ("Pneumonia cannot be excluded.",)),
        "Pneumothorax": Phrases(
            ("There is a right apical pneumothorax.", "A small right pneumothorax is seen."),
            ("No pneumothorax.", "There is no pneumothorax."),
            ("Possible small right apical pneumothorax.",)),
        "Support Devices": Phrases(
            ("An endotracheal tube is in place.", "The endotracheal tube terminates above the carina."),
            ("No support devices.",), ("A line may be present.",)),
        "No Finding": Phrases(
            ("No acute cardiopulmonary process.",), ("Abnormal study.",), ()),
    },
    "zh": {
        "Atelectasis": Phrases(
            ("双肺底可见肺不张。", "双肺底轻度肺不张。"), ("未见肺不张。",), ("双肺底可能有肺不张。",)),
        "Cardiomegaly": Phrases(
            ("心影增大。", "心脏中度增大。"), ("心影大小正常。", "心脏大小在正常范围内。"),
            ("心影可能轻度增大。",)),
        "Consolidation": Phrases(
            ("右下肺可见局灶性实变。", "右肺下叶实变。"), ("未见局灶性实变。",),
            ("右下肺可能有实变。",)),
        "Edema": Phrases(
            ("可见轻度肺水肿。", "轻度间质性水肿。"), ("未见肺水肿。",), ("可能有轻度肺水肿。",)),
        "Enlarged Cardiomediastinum": Phrases(
            ("纵隔增宽。",), ("纵隔轮廓正常。",), ("纵隔可能增宽。",)),
        "Fracture": Phrases(
            ("左侧肋骨骨折伴移位。",), ("未见急性骨折。",), ("左侧肋骨可能骨折。",)),
        "Lung Lesion": Phrases(
            ("左上肺可见结节。", "左肺上叶结节。"), ("未见肺结节。",), ("左上肺可能有结节。",)),
        "Pleural Effusion": Phrases(
            ("左侧少量胸腔积液。", "左侧可见少量积液。"), ("未见胸腔积液。",),
            ("左侧可能有少量胸腔积液。",)),
        "Pleural Other": Phrases(
            ("右侧胸膜增厚。",), ("未见胸膜增厚。",), ("右侧胸膜可能增厚。",)),
        "Pneumonia": Phrases(
            ("考虑肺炎。",), ("未见肺炎征象。",), ("不除外肺炎。",)),
        "Pneumothorax": Phrases(
            ("右肺尖气胸。", "右侧少量气胸。"), ("未见气胸。",), ("右肺尖可能有少量气胸。",)),
        "Support Devices": Phrases(
            ("气管插管在位。", "气管插管末端位于隆突上方。"), ("无支持装置。",),
            ("可能有置管。",)),
        "No Finding": Phrases(("心肺未见急性病变。",), ("异常检查。",), ()),
    },
}


def prompt_pair(label: str, language: str) -> tuple[str, str]:
    """The (positive, negative) zero-shot prompts of one finding in one language."""
    phrases = PHRASES[language][label]
    return phrases.positive[0], phrases.negative[0]
