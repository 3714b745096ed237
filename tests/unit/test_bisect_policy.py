"""The decision rule: information of boots against a brute-force expectation over outcomes,
the choice of build, rounds of parallel boots, and the edge cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.bisect.model import Priors, evaluate, posterior
from harness.bisect.policy import (
    choose_round,
    information_per_build,
    round_information,
)
from harness.bisect.simulate import run_campaign, run_many, step_rates


def brute_information(boots: list[int], failures: list[int], alloc: dict[int, int],
                      priors: Priors) -> float:
    """H(C) - E_Y[H(C | data + Y)], enumerating every ordered outcome sequence of the boots
    and weighting it by the predictive probability from sequential Bayesian updates."""
    h0 = posterior(boots, failures, priors).entropy_bits
    slots = [b for b, m in sorted(alloc.items()) for _ in range(m)]
    expected = 0.0
    for outcome in itertools.product((0, 1), repeat=len(slots)):
        k, f = list(boots), list(failures)
        prob = 1.0
        for b, y in zip(slots, outcome, strict=True):
            ev = evaluate(np.array(k), np.array(f), priors)
            p_fail = float(np.sum(ev.post * np.where(np.arange(len(k)) <= b, ev.q, ev.g)))
            prob *= p_fail if y else 1 - p_fail
            k[b] += 1
            f[b] += y
        if prob > 0:
            expected += prob * posterior(k, f, priors).entropy_bits
    return h0 - expected


DATA = [
    ([10, 0, 3, 0, 2, 0, 10], [0, 0, 0, 0, 1, 0, 3]),
    ([30, 2, 5, 1, 9, 20], [1, 0, 0, 0, 2, 6]),  # known-good failed: baseline model only
    ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0]),
]


@pytest.mark.parametrize(("boots", "failures"), DATA)
@pytest.mark.parametrize("alloc", [{2: 1}, {3: 2}, {1: 1, 4: 1}, {2: 2, 4: 1}])
def test_round_information_matches_brute_force(boots: list[int], failures: list[int],
                                               alloc: dict[int, int]) -> None:
    priors = Priors()
    ev = evaluate(np.array(boots), np.array(failures), priors)
    got = round_information(ev, priors, alloc)
    assert got == pytest.approx(brute_information(boots, failures, alloc, priors), abs=1e-9)


@pytest.mark.parametrize(("boots", "failures"), DATA)
def test_one_boot_information_two_ways(boots: list[int], failures: list[int]) -> None:
    ev = evaluate(np.array(boots), np.array(failures))
    fast = information_per_build(ev.post, ev.q, ev.g)
    for b in range(len(boots)):
        assert fast[b] == pytest.approx(round_information(ev, Priors(), {b: 1}), abs=1e-10)


def test_known_bad_build_teaches_nothing_under_the_clean_model() -> None:
    ev = evaluate(np.array([5, 0, 0, 0, 5]), np.array([0, 0, 0, 0, 2]), model="clean")
    gain = information_per_build(ev.post, ev.q, ev.g)
    assert gain[0] == pytest.approx(0.0, abs=1e-12)  # known good: never fails
    assert gain[-1] == pytest.approx(0.0, abs=1e-12)  # known bad for every culprit


@pytest.mark.parametrize("q", [0.05, 0.6])
def test_best_build_is_not_the_median(q: float) -> None:
    """With a known rate and clean good builds, the best build leaves about 1/(q(1 +
    2^(h(q)/q))) of the culprit mass at or before it (0.37 for 0.05, 0.41 for 0.6)."""
    n = 401
    strong = Priors(bad_a=q * 1e6, bad_b=(1 - q) * 1e6)
    ev = evaluate(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), strong, "clean")
    best = int(np.argmax(information_per_build(ev.post, ev.q, ev.g)))
    mass = float(np.cumsum(ev.post)[best])
    h = -(q * math.log2(q) + (1 - q) * math.log2(1 - q))
    assert mass == pytest.approx(1 / (q * (1 + 2 ** (h / q))), abs=0.01)
    assert abs(mass - 0.5) > 0.08


def test_round_of_parallel_boots() -> None:
    boots = np.array([40, 0, 0, 0, 0, 0, 0, 0, 0, 40])
    failures = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 10])
    one = choose_round(boots, failures, slots=1)
    four = choose_round(boots, failures, slots=4)
    assert one.total == 1
    assert four.total == 4
    assert len(four.boots) >= 2  # spread over builds while that pays more
    assert four.information > one.information
    ev = evaluate(boots, failures)
    assert four.information == pytest.approx(round_information(ev, Priors(), four.as_dict()))


def test_round_respects_the_outcome_cap_and_the_usable_builds() -> None:
    boots = np.array([40, 0, 0, 0, 0, 0, 40])
    failures = np.array([0, 0, 0, 0, 0, 0, 10])
    capped = choose_round(boots, failures, slots=50, max_outcomes=64)
    assert math.prod(m + 1 for _, m in capped.boots) <= 64
    usable = np.array([True, True, False, False, False, True, True])
    rnd = choose_round(boots, failures, slots=3, usable=usable)
    assert all(usable[b] for b, _ in rnd.boots)
    with pytest.raises(ValueError, match="no build can be booted"):
        choose_round(boots, failures, usable=np.zeros(7, dtype=bool))
    with pytest.raises(ValueError, match="slots"):
        choose_round(boots, failures, slots=0)


def test_a_decided_posterior_still_gives_a_valid_round() -> None:
    rnd = choose_round(np.array([3, 3]), np.array([0, 1]), slots=2)
    assert rnd.information == pytest.approx(0.0, abs=1e-12)
    assert 1 <= rnd.total <= 2


def test_simulated_campaign_finds_the_culprit_and_is_reproducible() -> None:
    rates = step_rates(16, culprit=11, bad=0.6)
    a = run_campaign(rates, np.random.default_rng(3))
    b = run_campaign(rates, np.random.default_rng(3))
    assert a == b
    assert a.reached and a.culprit == 11 and a.probability >= 0.95
    batch = run_campaign(rates, np.random.default_rng(3), slots=4)
    assert batch.culprit == 11 and batch.rounds < batch.boots


def test_simulated_campaign_stops_at_the_budget() -> None:
    res = run_campaign(step_rates(32, 20, 0.02), np.random.default_rng(0), budget=15)
    assert res.boots == 15 and not res.reached


def test_lockstep_campaigns_agree_with_single_ones_on_decisions() -> None:
    rng = np.random.default_rng(9)
    rates = np.array([step_rates(12, c, 0.5) for c in (2, 5, 11)])
    res = run_many(rates, rng)
    assert res.culprit == (2, 5, 11)
    assert all(p >= 0.95 for p in res.probability)
