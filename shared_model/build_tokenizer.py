"""Rebuild the shipped shared tokenizer (``python -m shared_model.build_tokenizer``).

Sites must agree on one vocabulary, so the tokenizer is a versioned file in the repository,
not something each site trains on its own reports. It is a lower-cased BERT WordPiece whose
alphabet holds every printable ASCII character (any English word tokenizes) and every GB2312
character (each Chinese character is one token, split per character by the BERT normalizer).
English subwords are learned from the findings sentences plus a radiology lexicon below.
WordPiece training breaks frequency ties in no fixed order, so each rebuild is a new version.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from shared_model.findings import PHRASES

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[EN]", "[ZH]"]
VOCAB_SIZE = 12000

LEXICON = """
final report examination indication history technique comparison findings impression wet read
addendum chest pa lateral ap portable frontal upright supine semi-erect radiograph radiographs views
view single two study studies prior previous interval change unchanged stable improved worsened
worsening increased decreased new resolved resolving persistent minimal mild moderate severe small
large trace tiny moderate-sized left right bilateral bibasilar basilar apical apex base bases upper
middle lower lobe lobes lingula hilum hilar perihilar mediastinum mediastinal cardiomediastinal
silhouette contour contours heart cardiac size enlarged enlargement cardiomegaly normal abnormal
within limits top borderline pulmonary vascular vasculature congestion edema interstitial alveolar
opacity opacities opacification consolidation atelectasis atelectatic scarring fibrosis nodule nodules
nodular mass lesion lesions granuloma calcified calcification pleural effusion effusions thickening
pneumothorax pneumonia infection aspiration infiltrate emphysema hyperinflation hyperinflated
fracture fractures rib ribs clavicle spine thoracic degenerative osseous structures bony soft tissues
endotracheal tube enteric nasogastric feeding catheter line central venous picc pacemaker pacer
leads lead wires sternotomy clips valve device devices stent port tip terminates projects carina
superior vena cava atrium stomach diaphragm hemidiaphragm costophrenic angle angles blunting
acute chronic cardiopulmonary process evidence concerning suspicious likely possibly possible
cannot excluded exclude consistent with suggest suggests suggestive compatible represent
recommend recommended follow-up ct correlation clinical patient year old man woman male female
shortness of breath cough fever pain dyspnea eval evaluate evaluation assess rule out no there is
are the a an and or of in at on to with without for from by as be been has have not seen noted
present identified demonstrated visualized unremarkable clear lungs lung well expanded
displaced nondisplaced healed old focal multifocal patchy diffuse streaky linear band-like
contrast axial slice slices window mediastinal lung ground-glass attenuation density dense
"""


def training_corpus() -> list[str]:
    lines = [LEXICON]
    for language in PHRASES.values():
        for phrases in language.values():
            lines.extend(phrases.positive + phrases.negative + phrases.uncertain)
    return lines


def gb2312_characters() -> list[str]:
    """Every character of GB2312 (symbols rows 1-9 and hanzi rows 16-87)."""
    chars = []
    for row in range(0xA1, 0xF8):
        for col in range(0xA1, 0xFF):
            try:
                chars.append(bytes([row, col]).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def build() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    ascii_chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    alphabet = ascii_chars + gb2312_characters()
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE, min_frequency=1, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=alphabet, limit_alphabet=len(alphabet) + 100, show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m shared_model.build_tokenizer OUT.json (never overwrite a released version)")
        return 2
    out = Path(argv[0])
    build().save(str(out), pretty=False)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
