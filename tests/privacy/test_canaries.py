"""Secret Sharer arithmetic: canary texts, the rank-estimated exposure, its chance level and the rank tests."""
from __future__ import annotations

import math
import random

import pytest

from privacy.canaries import (SPACE, alternatives, canary_text, chance_exposure, chance_sd, exposure, extrapolated_exposure,
                              make_canaries, prefix_text, rank_among, rank_tests, secret_text)


def test_a_canary_ranked_first_among_r_alternatives_has_exposure_log2_r_plus_1():
    assert exposure(rank_among(1.0, [2.0] * 999), 1000) == pytest.approx(math.log2(1000))
    assert exposure(1, 10_001) == pytest.approx(math.log2(10_001))
    # Last place: no exposure at all; the whole space: log2 |space| = 19.93 bits for six digits.
    assert exposure(1000, 1000) == 0.0
    assert exposure(1, SPACE) == pytest.approx(6 * math.log2(10))
    with pytest.raises(ValueError):
        exposure(0, 10)


def test_ties_take_the_midrank():
    assert rank_among(1.0, [1.0, 1.0, 0.5, 3.0]) == 3.0  # one better, two tied: 1 + 1 + 2/2


def test_chance_exposure_is_the_mean_over_every_rank_and_tends_to_one_over_ln2():
    for n in (1, 2, 10, 1001):
        assert chance_exposure(n) == pytest.approx(sum(exposure(r, n) for r in range(1, n + 1)) / n)
    assert chance_exposure(10**6) == pytest.approx(1 / math.log(2), abs=1e-4)
    assert chance_exposure(1001) < 1 / math.log(2)


def test_uniform_ranks_average_chance_exposure_and_pass_the_uniformity_test():
    rng = random.Random(0)
    n = 101
    ranks = [rng.randint(1, n) for _ in range(4000)]
    values = [exposure(r, n) for r in ranks]
    mean = sum(values) / len(values)
    assert mean == pytest.approx(chance_exposure(n), abs=0.06)
    assert math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) == pytest.approx(chance_sd(n), rel=0.05)
    assert chance_sd(10**6) == pytest.approx(1 / math.log(2), rel=1e-3)
    small = rank_tests(ranks[:20], n, ranks[20:40])
    assert small["uniform_p"] > 0.01 and small["control_p"] > 0.01


def test_ranks_near_the_top_are_told_apart_from_chance_and_from_the_control_group():
    tests = rank_tests([1, 2, 1, 3, 1, 1, 5, 2], 101, [40, 77, 12, 95, 60, 33, 51, 8])
    assert tests["uniform_p"] < 1e-6 and tests["control_p"] < 0.01 and tests["top_half"] == 8
    assert tests["top_half_p"] == pytest.approx(0.5 ** 8)


def test_canaries_are_drawn_per_language_with_distinct_secrets_and_never_inserted_controls():
    hosts = {"en": ["No acute process."], "zh": ["心肺未见急性病变。"]}
    inserted, control = make_canaries(5, hosts=hosts, seed=3)
    assert len(inserted) == len(control) == 5
    assert all(c.inserted for c in inserted) and not any(c.inserted for c in control)
    assert len({c.secret for c in inserted + control}) == 10
    assert {c.language for c in inserted} == {"en", "zh"}
    en = next(c for c in inserted if c.language == "en")
    assert en.text == f"No acute process. Patient identifier {secret_text(en.secret)}."
    assert en.blanked == "No acute process. Patient identifier." and en.prefix == "No acute process. Patient identifier"
    zh = next(c for c in inserted if c.language == "zh")
    assert zh.text == f"心肺未见急性病变。患者编号 {secret_text(zh.secret)}。" and zh.blanked == "心肺未见急性病变。患者编号。"
    assert prefix_text("x", "zh") == "x患者编号"
    assert make_canaries(5, hosts=hosts, seed=3) == (inserted, control)  # seeded
    with pytest.raises(ValueError):
        make_canaries(0, hosts=hosts, seed=3)


def test_alternatives_are_distinct_and_never_the_secret():
    others = alternatives(0, SPACE - 1, seed=1)
    assert sorted(others) == list(range(1, SPACE))
    picked = alternatives(123_456, 500, seed=2)
    assert len(set(picked)) == 500 and 123_456 not in picked
    assert canary_text("", "en", 7) == "Patient identifier 0 0 0 0 0 7."


def test_the_extrapolated_exposure_follows_the_tail_and_is_capped_at_the_space():
    rng = random.Random(1)
    others = [rng.gauss(100.0, 5.0) for _ in range(1000)]
    middle = extrapolated_exposure(100.0, others)
    assert middle == pytest.approx(1.0, abs=0.2)  # half the alternatives are more likely
    assert extrapolated_exposure(80.0, others) > math.log2(1001)  # past what the sample can rank
    assert extrapolated_exposure(-1e6, others) == pytest.approx(math.log2(SPACE))
