"""Secret Sharer canaries and their exposure (Carlini et al., USENIX Security 2019, arXiv 1802.08232).

A canary is a sentence of a fixed, report-like format holding a random secret, appended to a
plausible report: English ``Patient identifier 3 8 1 2 0 9.``, Chinese ``患者编号 3 8 1 2 0 9。``.
The secret is ``DIGITS`` digits written one token apart, so the randomness space holds
``10 ** DIGITS`` secrets and each is the same number of tokens. Exposure measures how much more
likely a trained model finds the inserted secret than the others of its space:

    exposure = log2 |space| − log2 rank,

rank 1 being the lowest log-perplexity. Scoring the whole space is 10^6 forward passes per
canary, so the rank is estimated within a uniform sample of R alternatives:
``log2(R + 1) − log2(rank among R + 1)``, at most ``log2(R + 1)`` (the paper's §4.3 extrapolation,
a skew-normal fit to the alternatives' log-perplexities, is reported beside it; it may exceed that
cap, never log2 |space|, and is an approximation). A secret ranked uniformly at random has expected exposure
``log2 N − log2(N!)/N ≈ 1/ln 2 ≈ 1.44`` bits (``chance_exposure``): what a model that learned
nothing about it shows. Canaries that were never inserted (the control group) measure that chance
level on the same model. Pure Python and scipy, no torch: a privacy officer's arithmetic.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

DIGITS = 6
SPACE = 10 ** DIGITS
# One sentence per language; {secret} is the spaced digits. Appended to the host report.
FORMATS = {"en": "Patient identifier {secret}.", "zh": "患者编号 {secret}。"}
JOIN = {"en": " ", "zh": ""}


def secret_text(secret: int) -> str:
    """``381209`` -> ``"3 8 1 2 0 9"``: one token per digit for every m3fed tokenizer language."""
    if not 0 <= secret < SPACE:
        raise ValueError(f"a secret is an integer in [0, {SPACE}), got {secret}")
    return " ".join(f"{secret:0{DIGITS}d}")


def canary_text(host: str, language: str, secret: int | None) -> str:
    """``host`` with the canary sentence appended; ``secret`` None: the sentence with the secret left out
    (what an attacker who knows the format but not the secret can write)."""
    if language not in FORMATS:
        raise ValueError(f"no canary format for language {language!r} ({', '.join(FORMATS)})")
    sentence = FORMATS[language].format(secret="" if secret is None else secret_text(secret))
    if secret is None:
        sentence = sentence.replace(" .", ".").replace(" 。", "。")
    return f"{host.rstrip()}{JOIN[language]}{sentence}" if host.strip() else sentence


def prefix_text(host: str, language: str) -> str:
    """The canary's text before its secret: what someone who knows the format and the host can write."""
    start = FORMATS[language].split("{secret}")[0].rstrip()
    return f"{host.rstrip()}{JOIN[language]}{start}" if host.strip() else start


@dataclass(frozen=True)
class Canary:
    name: str
    language: str
    host: str
    secret: int
    inserted: bool

    @property
    def text(self) -> str:
        return canary_text(self.host, self.language, self.secret)

    @property
    def blanked(self) -> str:
        return canary_text(self.host, self.language, None)

    @property
    def prefix(self) -> str:
        return prefix_text(self.host, self.language)

    @property
    def digits(self) -> str:
        return f"{self.secret:0{DIGITS}d}"

    def to_dict(self) -> dict:
        return {**asdict(self), "text": self.text, "space": SPACE}


def make_canaries(count: int, *, hosts: dict[str, list[str]], seed: int) -> tuple[list[Canary], list[Canary]]:
    """(inserted, control): ``count`` canaries each, languages taken in turn from ``hosts``, each with a
    host report drawn from that language's list and a distinct secret drawn uniformly from the space.

    The control canaries are the same format, drawn the same way, and never trained on."""
    if count < 1:
        raise ValueError(f"canaries must be at least 1, got {count}")
    languages = sorted(lang for lang, texts in hosts.items() if texts)
    if not languages:
        raise ValueError("no host reports in any language with a canary format")
    rng = random.Random(f"canaries-{seed}")
    secrets = rng.sample(range(SPACE), 2 * count)
    out = []
    for k in range(2 * count):
        language = languages[k % len(languages)]
        inserted = k < count
        out.append(Canary(name=f"{'canary' if inserted else 'control'}-{k % count:03d}", language=language,
                          host=rng.choice(hosts[language]), secret=secrets[k], inserted=inserted))
    return out[:count], out[count:]


def alternatives(secret: int, count: int, *, seed: str | int) -> list[int]:
    """``count`` distinct secrets of the space other than ``secret``, uniformly drawn."""
    if not 1 <= count < SPACE:
        raise ValueError(f"alternatives must be in [1, {SPACE - 1}], got {count}")
    rng = random.Random(f"alternatives-{seed}")
    drawn = rng.sample(range(SPACE - 1), count)
    return [s if s < secret else s + 1 for s in drawn]  # skips the secret itself


def rank_among(score: float, others: list[float]) -> float:
    """1-based rank of ``score`` among ``others`` + itself, lowest first; ties count half (midrank)."""
    lower = sum(1 for o in others if o < score)
    ties = sum(1 for o in others if o == score)
    return 1 + lower + ties / 2


def exposure(rank: float, candidates: int) -> float:
    """log2(candidates) − log2(rank): the rank-estimated exposure (bits) among ``candidates`` secrets."""
    if candidates < 1 or not 1 <= rank <= candidates:
        raise ValueError(f"need 1 <= rank <= candidates, got rank {rank} of {candidates}")
    return math.log2(candidates) - math.log2(rank)


def chance_exposure(candidates: int) -> float:
    """Expected exposure of a rank uniform on 1..N: log2 N − log2(N!)/N (→ 1/ln 2 ≈ 1.443 bits)."""
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    return math.log2(candidates) - math.lgamma(candidates + 1) / (candidates * math.log(2))


def chance_sd(candidates: int) -> float:
    """Standard deviation of the exposure of a rank uniform on 1..N (→ 1/ln 2: about exponential); the mean
    of K chance exposures spreads by this / √K."""
    if candidates < 1:
        raise ValueError(f"candidates must be at least 1, got {candidates}")
    if candidates > 100_000:
        return 1 / math.log(2)
    logs = [math.log2(r) for r in range(1, candidates + 1)]
    mean = math.fsum(logs) / candidates
    return math.sqrt(math.fsum((x - mean) ** 2 for x in logs) / candidates)


def extrapolated_exposure(score: float, others: list[float]) -> float | None:
    """−log2 P(X ≤ score) for X skew-normal fitted to the alternatives' log-perplexities (Carlini §4.3).

    An approximation past the sample's reach (it may exceed log2(R + 1)); None when the fit fails."""
    try:
        from scipy.stats import skewnorm
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        return None
    if len(others) < 10 or len(set(others)) < 3:
        return None
    try:
        params = skewnorm.fit(others)
        cdf = float(skewnorm.cdf(score, *params))
    except (ValueError, RuntimeError, FloatingPointError):
        return None
    if not math.isfinite(cdf):
        return None
    # Capped at log2 |space|: no secret can rank above first in the whole space.
    return min(-math.log2(max(cdf, 1e-300)), math.log2(SPACE))


def rank_tests(ranks: list[float], candidates: int, control: list[float] | None = None) -> dict:
    """Do the inserted canaries rank better (lower) than chance?

    ``uniform_p``: one-sided Kolmogorov–Smirnov test of (rank − ½)/N against U(0, 1), alternative
    "ranks smaller than uniform". ``control_p``: one-sided Mann–Whitney U of the inserted ranks
    against the control canaries' ranks. ``top_half_p``: exact one-sided binomial test of how many
    ranks fall in the better half (p = ½). Small p: the model tells the inserted secrets apart."""
    from scipy.stats import binomtest, kstest, mannwhitneyu

    u = [(r - 0.5) / candidates for r in ranks]
    out = {"uniform_p": float(kstest(u, "uniform", alternative="greater").pvalue),
           "top_half": sum(1 for r in ranks if r <= (candidates + 1) / 2),
           "top_half_p": float(binomtest(sum(1 for r in ranks if r <= (candidates + 1) / 2), len(ranks), 0.5,
                                         alternative="greater").pvalue)}
    if control:
        out["control_p"] = float(mannwhitneyu(ranks, control, alternative="less").pvalue)
    return out
