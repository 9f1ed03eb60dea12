"""Generated reports do not repeat themselves: GenerationSettings in greedy and beam decoding, on a trained model."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import re

from shared_model.generation import UNCONSTRAINED, GenerationSettings, tidy_report
from tests.shared_model.trained_tiny import trained_tiny

SEPARATORS = {"en": ".", "zh": "。"}


def repeated_sentences(text: str, language: str) -> list[str]:
    said = [" ".join(s.lower().split()) for s in text.split(SEPARATORS[language]) if s.strip()]
    return sorted({s for s in said if said.count(s) > 1})


def share_repeating(reports: dict[str, list[str]]) -> float:
    flags = [bool(repeated_sentences(text, lang)) for lang, texts in reports.items() for text in texts]
    return sum(flags) / len(flags)


@pytest.fixture(scope="module")
def generated():
    """Reports for the test images of the trained model's dataset, in both languages, per setting."""
    from client.data.dataset import decode
    from client.data.evaldata import bank_texts, evaluation_inputs
    from client.data.sources import load_records
    from shared_model.checkpoint import load_checkpoint
    from shared_model.evaluate import embed_images, embed_texts, generate_reports

    data, checkpoint = trained_tiny()
    model, _ = load_checkpoint(checkpoint)
    records, report = load_records(data)
    device = torch.device("cpu")
    test = decode([r for r in records if r.split != "train"], model.cfg.image_size, report)
    images = embed_images(model, evaluation_inputs(test, ())["images"], device)[:12]
    bank = embed_texts(model, bank_texts([r for r in records if r.split == "train"], 2000, 0), device)
    default = GenerationSettings()
    settings = {"plain greedy": UNCONSTRAINED, "greedy": default,
                "plain beam": UNCONSTRAINED.with_beams(3), "beam": default.with_beams(3),
                "n-gram block only": dataclasses.replace(UNCONSTRAINED, no_repeat_ngram_en=default.no_repeat_ngram_en,
                                                         no_repeat_ngram_zh=default.no_repeat_ngram_zh)}
    return {name: {lang: generate_reports(model, images, bank, lang, device, settings=s) for lang in SEPARATORS}
            for name, s in settings.items()}


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_no_generated_report_repeats_a_sentence(generated, decoding, language):
    reports = generated[decoding][language]
    assert all(reports), reports
    repeats = {text: repeated_sentences(text, language) for text in reports}
    assert not any(repeats.values()), {t: r for t, r in repeats.items() if r}


@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_the_same_model_loops_without_the_settings(generated, decoding):
    # What the settings are for: plain decoding of this model repeats sentences (so the test above can fail).
    assert share_repeating(generated[f"plain {decoding}"]) > 0.25


def test_the_ngram_block_alone_stops_most_loops(generated):
    # Before any text is edited (tidy off): the decoder itself no longer loops.
    assert share_repeating(generated["n-gram block only"]) < 0.5 * share_repeating(generated["plain greedy"])


def test_reports_are_written_in_the_language_asked_for(generated):
    # keep_language: no English word (4+ Latin letters) in a Chinese report, no Chinese character in an English one.
    for decoding in ("greedy", "beam"):
        for text in generated[decoding]["zh"]:
            assert not re.search("[A-Za-z]{4,}", text), text
            assert any("\u4e00" <= c <= "\u9fff" for c in text), text
        for text in generated[decoding]["en"]:
            assert not any("\u4e00" <= c <= "\u9fff" for c in text), text


def test_tidy_drops_repeats_and_an_unfinished_tail():
    en = "The heart is enlarged. No effusion. there. The heart is  enlarged. there. no pneumo"
    assert tidy_report(en, "en") == "The heart is enlarged. No effusion. there."
    assert tidy_report("No effusion. there. no effusion", "en") == "No effusion. there."
    assert tidy_report("no acute process", "en") == "no acute process"  # nothing finished before it: kept
    assert tidy_report("心影增大。未见气胸。心影增大。未见", "zh") == "心影增大。未见气胸。"


def test_settings_are_validated_and_chosen_per_language():
    settings = GenerationSettings(no_repeat_ngram_en=5, no_repeat_ngram_zh=7, num_beams=2)
    assert settings.options("en")["no_repeat_ngram_size"] == 5
    assert settings.options("zh")["no_repeat_ngram_size"] == 7
    assert settings.options("zh")["num_beams"] == 2
    assert GenerationSettings.from_dict(settings.to_dict()) == settings
    for bad in ({"num_beams": 0}, {"no_repeat_ngram_en": -1}, {"repetition_penalty": 0.0},
                {"max_new_tokens": -2}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            dataclasses.replace(GenerationSettings(), **bad)
    with pytest.raises(ValueError, match="'fr'"):
        settings.options("fr")


def test_max_new_tokens_bounds_the_report():
    from shared_model.config import get_preset
    from shared_model.model import build_model

    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    condition = torch.nn.functional.normalize(torch.randn(2, model.cfg.embed_dim), dim=-1)
    start = torch.full((2,), model.tokenizer.lang_ids["en"])
    out = model.lm.generate(condition, start, **GenerationSettings(max_new_tokens=5).options("en"))
    assert out.shape[1] <= 6 and out[:, 0].tolist() == start.tolist()


def test_evaluation_records_how_its_reports_were_decoded():
    from shared_model.config import get_preset
    from shared_model.evaluate import evaluate_model
    from shared_model.model import build_model

    torch.manual_seed(0)
    model = build_model(get_preset("tiny")).eval()
    images = torch.randint(0, 255, (2, 1, model.cfg.image_size, model.cfg.image_size), dtype=torch.uint8)
    settings = GenerationSettings(num_beams=2, max_new_tokens=6)
    result = evaluate_model(model, images=images, labels={}, references={"en": ([0, 1], ["No effusion.", "x."])},
                            bank_texts=["No effusion."], device=torch.device("cpu"), generation=settings)
    assert GenerationSettings.from_dict(result["generation"]) == settings and set(result["bleu"]) == {"en"}
    plain = evaluate_model(model, images=images, labels={}, references={}, bank_texts=["x"],
                           device=torch.device("cpu"), num_beams=3)
    assert plain["generation"] == GenerationSettings(num_beams=3).to_dict()
