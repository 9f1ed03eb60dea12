"""How MultiMedLM decodes a report: one frozen, validated setting, importable without torch.

Left to itself the decoder falls into a loop ("the lungs are clear. the lungs are clear. ...")
until the length limit. transformers' generation options stop that without new decoding code:
``no_repeat_ngram_size`` forbids any n-gram the report already holds, ``repetition_penalty``
lowers every token already written, ``length_penalty`` tilts beam search to longer or shorter
finished beams. The n-gram size is per language because the tokens differ: English is word
pieces (a sentence is ~3-10 tokens), Chinese one token per character (a sentence is ~4-12
characters, and phrases such as "。未见肺" or "未见明显" legitimately recur in one report). Too small
an n blocks those phrases; too large lets short sentences loop. Measured on the synthetic test
reports (BENCHMARKS.md, "Reports that read like reports"): of the references that repeat no
sentence, 25 % hold a repeated English 3-gram and none a 4-gram; 38 % a repeated Chinese 4-gram,
8 % a 5-gram, none a 6-gram. English n=4 blocks nothing a reference writes and scored best;
Chinese n=5 blocks a fifth as much legitimate text as n=4 at a lower BLEU-4 and a higher ROUGE-L;
from n=6 BLEU-4 fell back to plain decoding's.

Blocking takes away the loop a weak decoder would fall into, and such a decoder then wanders
into the other language ("未见气胸。未 is a small right lower lobe"). ``keep_language`` closes that
door with transformers' ``suppress_tokens``: an English report gets no Chinese character, a
Chinese report no English word (a token of four or more Latin letters; abbreviations such as
CT, MRI or mm stay possible).

``tidy`` then edits the text: a sentence shorter than the n-gram (a one-word "there." twice) can
still repeat, and a report that reached the length limit (or a weak decoder's early end) stops
mid-sentence; the repeat and the unfinished tail are dropped.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding of generated reports (greedy when ``num_beams`` is 1); 0 turns an n-gram block off."""

    num_beams: int = 1
    no_repeat_ngram_en: int = 4  # word pieces (see the module docstring and BENCHMARKS.md)
    no_repeat_ngram_zh: int = 5  # characters
    repetition_penalty: float = 1.0  # 1.0: off; >1 lowers every token already written
    # Beam search only: a beam's score is its log-probability / length**p, so a larger p favours longer
    # reports; at transformers' 1.0 blocked beams ended early (BENCHMARKS.md: 2.0 scored better in both languages).
    length_penalty: float = 2.0
    max_new_tokens: int = 0  # 0: up to the model's max_report_len
    keep_language: bool = True  # suppress the other language's tokens (module docstring)
    tidy: bool = True  # drop repeated sentences and an unfinished last sentence (module docstring)

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1 (1 = greedy), got {self.num_beams}")
        for name in ("no_repeat_ngram_en", "no_repeat_ngram_zh", "max_new_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: off), got {getattr(self, name)}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1.0: off), got {self.repetition_penalty}")

    def options(self, language: str) -> dict:
        """Keyword arguments of ``MultiMedLM.generate`` for reports in ``language``."""
        try:
            ngram = {"en": self.no_repeat_ngram_en, "zh": self.no_repeat_ngram_zh}[language]
        except KeyError:
            raise ValueError(f"no generation settings for language {language!r} (en or zh)") from None
        return {"num_beams": self.num_beams, "no_repeat_ngram_size": ngram,
                "repetition_penalty": self.repetition_penalty, "length_penalty": self.length_penalty,
                "max_new_tokens": self.max_new_tokens}

    def with_beams(self, num_beams: int) -> "GenerationSettings":
        return dataclasses.replace(self, num_beams=num_beams)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GenerationSettings":
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown generation settings: {', '.join(unknown)}")
        return cls(**values)


# What generation did before these settings: plain greedy / beam decoding to the length limit.
UNCONSTRAINED = GenerationSettings(no_repeat_ngram_en=0, no_repeat_ngram_zh=0, length_penalty=1.0, keep_language=False,
                                  tidy=False)

SENTENCE_END = {"en": ".", "zh": "。"}


def sentences(text: str, language: str) -> list[str]:
    """``text`` cut after each sentence end (EN '.', ZH '。'); the last piece may lack one."""
    end = SENTENCE_END[language]
    return [s for s in re.findall(rf"[^{end}]*{re.escape(end)}|[^{end}]+$", text) if s.strip()]


def tidy_report(text: str, language: str) -> str:
    """``text`` without sentences that repeat an earlier one (case and spacing aside) and without an
    unfinished last sentence (no sentence end) when a finished one precedes it: the decoder stopped
    mid-sentence, at the length limit or by ending early."""
    end = SENTENCE_END[language]
    pieces = sentences(text, language)
    if len(pieces) > 1 and not pieces[-1].rstrip().endswith(end):
        pieces = pieces[:-1]
    kept, seen = [], set()
    for piece in pieces:
        key = " ".join(piece.lower().replace(end, " ").split())
        if key not in seen:
            seen.add(key)
            kept.append(piece.strip())
    return (" " if language == "en" else "").join(kept)


_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
_LATIN_WORD = re.compile(r"[A-Za-z]{4,}")


def other_language_tokens(tokenizer, language: str) -> list[int]:
    """Token ids a report in ``language`` never holds: CJK for English, English words for Chinese."""
    return list(_other_language_tokens(tokenizer, tokenizer.sha256, language))


@lru_cache(maxsize=8)
def _other_language_tokens(tokenizer, _sha256: str, language: str) -> tuple[int, ...]:
    foreign = {"en": _CJK, "zh": _LATIN_WORD}[language]
    return tuple(i for i in range(tokenizer.vocab_size) if foreign.search(tokenizer.decode([i])))
