"""The project's accountant: ε of a site's whole history of DP-SGD steps, on Opacus 1.6 accountants.

A history is a list of segments ``(noise_multiplier, sample_rate, steps)``, the order and meaning of
Opacus's ``accountant.history``; σ or q may change between segments and each keeps its own steps
(never the worst σ for all). The figures are Opacus's own (PRV upper bound by default, RDP as the
conservative second check); nothing here re-derives the RDP or PRV maths.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from importlib.metadata import version

import numpy as np

Segment = tuple[float, float, int]  # (noise_multiplier σ, sample_rate q, integer steps T)

ACCOUNTANTS = ("prv", "rdp")
# Opacus's PRV defaults (as in PrivacyEngine.get_epsilon): the figure is the upper end of an
# interval about 2·eps_error wide, so it sits ~eps_error above the PRV/PLD estimate.
PRV_EPS_ERROR = 0.01
# dp-accounting's default orders: Opacus's grid stops at 63, which clips the optimum for few steps
# or small ε and makes the bound needlessly loose. A superset of orders can only lower the minimum.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]
MAX_SIGMA = 1e6
# Calibration does not search below this σ: ε there is in the hundreds, and the PRV domain (and
# its memory) explodes. Returning a larger σ than needed is safe, never an overshoot.
MIN_SIGMA = 0.3


class AccountingError(ValueError):
    """A segment, δ or target that no accountant can work with."""


class PrivacyBudgetExhausted(AccountingError):
    """The next release would take the site past its ε; raised at the site, before training."""

    def __init__(self, *, epsilon: float, target_epsilon: float, delta: float, what: str) -> None:
        self.epsilon, self.target_epsilon, self.delta = epsilon, target_epsilon, delta
        super().__init__(f"privacy budget exhausted: {what} ε = {epsilon:.4f} > target ε = {target_epsilon:g} "
                         f"at δ = {delta:g}")


class RoundRefused(AccountingError):
    """The site's own pace refuses this round before training (the site shows ``budget: <reason>``).

    Not exhaustion: the budget may have room, but not for this round as asked: it would take more
    ε than ``max_epsilon_per_round``, need more noise than ``max_noise_multiplier`` (a round of
    noise), or charge a (run, round) a second time.
    """


def accountant_version(accountant: str) -> str:
    """Library, version and settings behind a figure, for ledgers and statements."""
    _check_accountant(accountant)
    detail = (f"PRVAccountant upper bound, eps_error={PRV_EPS_ERROR}, delta_error=delta/1000"
              if accountant == "prv" else "RDPAccountant, orders 1.1-1024 (dp-accounting grid)")
    return f"opacus {version('opacus')} {detail}"


def normalize(segments: Iterable[Sequence]) -> list[Segment]:
    """Validated segments, zero-step ones dropped and neighbours with equal (σ, q) merged.

    Merging is what Opacus's ``step()`` does (run-length history); doing it before every
    computation makes ε depend on the steps taken, not on how they were grouped into rounds.
    """
    out: list[Segment] = []
    for seg in segments:
        if len(seg) != 3:
            raise AccountingError(f"a segment is (noise_multiplier, sample_rate, steps), got {seg!r}")
        sigma, q, steps = seg
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise AccountingError(f"steps must be a non-negative integer (never epochs/q), got {steps!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < math.inf:
            raise AccountingError(f"noise_multiplier must be a positive number, got {sigma!r}")
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q <= 1:
            raise AccountingError(f"sample_rate must be in (0, 1], got {q!r}")
        if steps == 0:
            continue
        if out and out[-1][:2] == (float(sigma), float(q)):
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + steps)
        else:
            out.append((float(sigma), float(q), steps))
    return out


def epsilon(segments: Iterable[Sequence], *, delta: float, accountant: str) -> float:
    """ε of the composed segments at δ under add/remove-one adjacency (0.0 for no steps)."""
    _check_accountant(accountant)
    if not 0 < delta < 1:
        raise AccountingError(f"delta must be in (0, 1), got {delta!r}")
    history = normalize(segments)
    if not history:
        return 0.0  # Opacus's RDP reports ~0.0035 and PRV divides by zero for an empty history
    from opacus.accountants import create_accountant  # imports torch: only when a figure is needed

    acc = create_accountant(mechanism=accountant)
    acc.history = history  # same ε as driving .step() once per step
    if accountant == "prv":
        # PRV sizes its domain with an RDP bound whose optimum often sits at order 63, and Opacus then
        # warns about RDP; at q = 1 it takes log(1 - q) = -inf inside a np.where that discards it.
        # Neither affects the PRV figure, so neither reaches the user.
        with warnings.catch_warnings(), np.errstate(divide="ignore"):
            warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
            return float(acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))
    return float(acc.get_epsilon(delta=delta, alphas=RDP_ORDERS))


def would_exceed(segments: Iterable[Sequence], next_segment: Sequence, *, delta: float, target_epsilon: float,
                 accountant: str) -> bool:
    """Whether ε after also running ``next_segment`` would pass the target: ask before training."""
    return epsilon([*segments, next_segment], delta=delta, accountant=accountant) > target_epsilon


def calibrate_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str,
                    prior_segments: Iterable[Sequence] = (), tolerance: float = 0.01,
                    guess: float | None = None, max_sigma: float = MAX_SIGMA) -> float:
    """Smallest σ (to 1e-4, rounded up) keeping ε(prior + (σ, q, steps)) ≤ target, verified.

    Unlike ``make_private_with_epsilon`` this counts what was already spent. The result is
    re-checked after rounding and raised until it holds, so it never overshoots the target.
    "Smallest" is up to ``tolerance``: ``guess`` (a site's σ of its last round) is returned as it
    is when ε with it lands within ``tolerance`` below the target, one accountant call instead of
    a search (each call takes ~1 s once a ledger has rounds). The search goes to half of that, so
    that its own result, rounded up to 1e-4, passes the same test in the site's next round.
    ``max_sigma``: search no higher; ``RoundRefused`` when even that σ passes the target.
    """
    prior = normalize(prior_segments)
    if not target_epsilon > 0:
        raise AccountingError(f"target_epsilon must be positive, got {target_epsilon!r}")
    if not normalize([(1.0, sample_rate, steps)]):  # validates q and steps before any search
        raise AccountingError("steps must be at least 1 to calibrate σ for them")

    def eps_at(sigma: float) -> float:
        return epsilon([*prior, (sigma, sample_rate, steps)], delta=delta, accountant=accountant)

    spent = epsilon(prior, delta=delta, accountant=accountant)
    if spent >= target_epsilon:
        raise PrivacyBudgetExhausted(epsilon=spent, target_epsilon=target_epsilon, delta=delta, what="already spent")
    if guess is not None and guess >= MIN_SIGMA:
        start = math.ceil(round(guess * 1e4, 6)) / 1e4  # 1.6382 * 1e4 is 16382.000000000002
        if target_epsilon - tolerance <= eps_at(start) <= target_epsilon:
            return start
    low, high = 0.0, min(1.0, max_sigma)
    eps_high = eps_at(high)
    while eps_high > target_epsilon:
        if high >= max_sigma:
            raise RoundRefused(f"no σ ≤ {max_sigma:g} keeps ε ≤ {target_epsilon:g}: the budget is too small "
                               f"(ε already spent {spent:.4f})")
        low, high = high, min(2 * high, max_sigma)
        eps_high = eps_at(high)
    low = max(low, MIN_SIGMA)
    while high > low and target_epsilon - eps_high > tolerance / 2 and high - low > 1e-6 * high:
        mid = (low + high) / 2
        eps_mid = eps_at(mid)
        if eps_mid <= target_epsilon:
            high, eps_high = mid, eps_mid
        else:
            low = mid
    sigma = math.ceil(high * 1e4) / 1e4  # a σ a person can type into a config without losing the bound
    while eps_at(sigma) > target_epsilon:  # PRV is numerical: verify rather than trust monotonicity
        sigma = math.ceil(sigma * 1.001 * 1e4) / 1e4
    return sigma


def affordable_steps(*, target_epsilon: float, delta: float, noise_multiplier: float, sample_rate: float,
                     accountant: str, prior_segments: Iterable[Sequence] = (), multiple: int = 1,
                     limit: int) -> int:
    """Most steps (a multiple of ``multiple``, at most ``limit``) that keep ε ≤ target; 0 if none."""
    prior = normalize(prior_segments)
    for name, value, least in (("multiple", multiple, 1), ("limit", limit, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise AccountingError(f"{name} must be an integer ≥ {least}, got {value!r}")

    def fits(k: int) -> bool:  # k blocks of `multiple` steps
        return not would_exceed(prior, (noise_multiplier, sample_rate, k * multiple), delta=delta,
                                target_epsilon=target_epsilon, accountant=accountant)

    most = limit // multiple
    if most < 1 or not fits(1):
        return 0
    low, high = 1, 1  # exponential then binary search: ε is non-decreasing in steps
    while high < most and fits(min(2 * high, most)):
        low = high = min(2 * high, most)
    if high < most:
        high = min(2 * high, most)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if fits(mid) else (low, mid)
    return low * multiple


def _check_accountant(accountant: str) -> None:
    if accountant not in ACCOUNTANTS:
        raise AccountingError(f"accountant must be one of {', '.join(ACCOUNTANTS)} (GDP under-reports), "
                              f"got {accountant!r}")
