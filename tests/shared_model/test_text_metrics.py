"""text_metrics must reproduce pycocoevalcap (the oracle) and R2Gen's cleaning exactly."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge

from shared_model.text_metrics import corpus_bleu, normalize_report, rouge_l, score_reports


def _oracle(refs: list[str], hyps: list[str]) -> tuple[list[float], float]:
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    return bleu, float(rouge)


def _assert_matches_oracle(refs: list[str], hyps: list[str]) -> None:
    want_bleu, want_rouge = _oracle(refs, hyps)
    got = corpus_bleu(refs, hyps)
    assert [got[f"bleu{k}"] for k in range(1, 5)] == pytest.approx(want_bleu, abs=1e-9, rel=0)
    assert rouge_l(refs, hyps) == pytest.approx(want_rouge, abs=1e-9, rel=0)


REF = "the heart size is normal . the lungs are clear . no pleural effusion ."
FIXTURES = {
    "identical": ([REF], [REF]),
    "partial overlap": ([REF], ["the heart is enlarged . the lungs are clear ."]),
    "short hypothesis (brevity penalty)": ([REF], ["the lungs are clear ."]),
    "long hypothesis": ([REF], [REF + " there is no pneumothorax . the heart size is normal ."]),
    "one-token hypothesis": ([REF], ["the"]),
    "empty hypothesis": ([REF, REF], ["", REF]),
    "repeated tokens clipped": (["the cat ."], ["the the the the the ."]),
    "corpus of several": (
        [REF, "no acute cardiopulmonary process .", "mild cardiomegaly . no edema ."],
        ["the heart size is normal .", "no acute process .", "mild cardiomegaly . no edema ."]),
    "chinese characters": (
        ["双 肺 纹 理 清 晰 ， 未 见 实 变 。", "心 影 不 大 。"],
        ["双 肺 纹 理 增 多 ， 未 见 实 变 。", "心 影 增 大 。"]),
}


@pytest.mark.parametrize("refs,hyps", FIXTURES.values(), ids=FIXTURES.keys())
def test_bleu_and_rouge_equal_pycocoevalcap(refs: list[str], hyps: list[str]) -> None:
    _assert_matches_oracle(refs, hyps)


_TOKENS = st.lists(st.sampled_from(["a", "b", "c", "d", ".", "，", "肺"]), max_size=15)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_TOKENS.filter(bool), _TOKENS), min_size=1, max_size=5))
def test_bleu_and_rouge_equal_pycocoevalcap_on_random_tokens(
        pairs: list[tuple[list[str], list[str]]]) -> None:
    _assert_matches_oracle([" ".join(r) for r, _ in pairs], [" ".join(h) for _, h in pairs])


def test_max_n_selects_keys() -> None:
    assert list(corpus_bleu([REF], [REF], max_n=2)) == ["bleu1", "bleu2"]
    with pytest.raises(ValueError):
        corpus_bleu([REF], [REF], max_n=0)


def test_r2gen_regex_range_quirk() -> None:
    # ':-[' is a range: ':' and '<' go, hyphens and digits stay; periods become tokens.
    assert normalize_report("a-b c:d e<f 12", "en") == "a-b cd ef 12 ."
    assert normalize_report("Size 3.5 cm; stable (unchanged)!", "en") == (
        "size 35 cm stable unchanged .")


def test_english_cleaning_sentences_and_enumerations() -> None:
    text = "IMPRESSION:\n1. No pneumothorax.  2. Stable cardiomegaly.. 3. Tube at ___."
    assert normalize_report(text, "en") == (
        "impression no pneumothorax . stable cardiomegaly . tube at .")
    assert normalize_report("The patient's \"heart\" is normal/stable.", "en") == (
        "the patients heart is normalstable .")


def test_blank_english_is_empty_not_a_period() -> None:
    assert normalize_report("  \n ", "en") == ""


def test_chinese_is_per_character_with_ascii_runs() -> None:
    assert normalize_report("双肺纹理清晰，\n未见实变。", "zh") == "双 肺 纹 理 清 晰 ， 未 见 实 变 。"
    assert normalize_report("CT 示结节 12 mm。", "zh") == "CT 示 结 节 12mm 。"


def test_unknown_language_rejected() -> None:
    with pytest.raises(ValueError, match="language"):
        normalize_report("text", "fr")


def test_score_reports_perfect_and_disjoint() -> None:
    refs = ["The heart size is normal. The lungs are clear.", "No acute process."]
    perfect = score_reports(refs, refs, "en")
    assert set(perfect) == {"bleu1", "bleu2", "bleu3", "bleu4", "rougeL"}
    assert perfect["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["rougeL"] == pytest.approx(1.0, abs=1e-6)
    disjoint = score_reports(["双肺纹理清晰。"], ["心影增大"], "zh")
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in disjoint.values())


def test_score_reports_values_are_fractions_and_tolerate_empty() -> None:
    scores = score_reports(["Heart normal. Lungs clear.", "No effusion."],
                           ["Heart enlarged.", ""], "en")
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores["bleu1"] > 0.0


def test_mismatched_or_empty_inputs_rejected() -> None:
    with pytest.raises(ValueError):
        score_reports(["a"], ["a", "b"], "en")
    with pytest.raises(ValueError):
        corpus_bleu([], [])
