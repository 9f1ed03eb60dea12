"""How MultiMedLM decodes a report: one frozen, validated setting, importable without torch.

Left to itself the decoder falls into a loop ("the lungs are clear. the lungs are clear. ...")
until the length limit. transformers' generation options stop that without new decoding code:
``no_repeat_ngram_size`` forbids any n-gram the report already holds, ``repetition_penalty``
lowers every token already written, ``length_penalty`` tilts beam search to longer or shorter
finished beams. The n-gram size is per language because the tokens differ: English is word
pieces (a sentence is ~5-10 tokens), Chinese one token per character (a sentence is ~5-12
characters, and short phrases such as "未见" or "少量胸腔积液" legitimately recur). Too small an n
blocks those phrases; too large lets short sentences repeat. BENCHMARKS.md ("Reports that read
like reports") has the measurements behind the defaults.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding of generated reports (greedy when ``num_beams`` is 1); 0 turns an n-gram block off."""

    num_beams: int = 1
    no_repeat_ngram_en: int = 3  # word pieces (see the module docstring and BENCHMARKS.md)
    no_repeat_ngram_zh: int = 4  # characters
    repetition_penalty: float = 1.0  # 1.0: off; >1 lowers every token already written
    length_penalty: float = 1.0  # beam search only: score / length**p (>0 favours longer reports)
    max_new_tokens: int = 0  # 0: up to the model's max_report_len

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


# What generation did before these settings: plain greedy / beam decoding to the length limit.
UNCONSTRAINED = GenerationSettings(no_repeat_ngram_en=0, no_repeat_ngram_zh=0)
