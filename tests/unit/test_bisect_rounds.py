"""Rounds spread over several builds, and the empirical-Bayes prior from the lab's history."""

from __future__ import annotations

import numpy as np
import pytest

from harness.bisect.model import DEFAULT_PRIORS, Priors, evaluate
from harness.bisect.policy import information_per_build, round_information
from harness.bisect.prior import MIN_GROUPS, empirical_priors
from harness.bisect.rounds import spread_rounds
from harness.bisect.simulate import run_rounds


def state(bad: float, n: int = 16, seed_boots: int = 50) -> tuple[np.ndarray, np.ndarray]:
    k = np.zeros(n, dtype=np.int64)
    f = np.zeros(n, dtype=np.int64)
    k[0] = k[-1] = seed_boots
    f[-1] = round(bad * seed_boots)
    return k, f


@pytest.mark.parametrize("bad", [0.05, 0.2, 0.6])
def test_a_round_uses_at_most_the_slots_and_at_least_one_boot(bad: float) -> None:
    k, f = state(bad)
    ev = evaluate(k, f, DEFAULT_PRIORS, "auto")
    for slots in (1, 3, 8):
        alloc = spread_rounds(ev.post, ev.q, ev.g, slots)
        assert 1 <= alloc.sum() <= slots and (alloc >= 0).all()
    one = spread_rounds(ev.post, ev.q, ev.g, 1)
    assert int(one.argmax()) == int(information_per_build(ev.post, ev.q, ev.g).argmax())
    usable = np.ones(k.size, dtype=bool)
    usable[int(one.argmax())] = False
    assert spread_rounds(ev.post, ev.q, ev.g, 8, usable=usable)[int(one.argmax())] == 0


def test_at_a_high_rate_the_round_probes_several_builds_and_learns_more() -> None:
    """At rate 0.6 eight boots of the best build teach less than the spread round: its
    exact information (outcomes enumerated, rate uncertainty kept) is higher."""
    k, f = state(0.6)
    ev = evaluate(k, f, DEFAULT_PRIORS, "auto")
    alloc = spread_rounds(ev.post, ev.q, ev.g, 8, keep=0.0)
    assert alloc.sum() == 8 and (alloc > 0).sum() >= 4
    best = int(information_per_build(ev.post, ev.q, ev.g).argmax())
    spread = round_information(ev, DEFAULT_PRIORS, {b: int(m) for b, m in enumerate(alloc)})
    same = round_information(ev, DEFAULT_PRIORS, {best: 8})
    assert spread > 1.5 * same


def test_campaigns_in_lockstep_find_the_culprit_in_rounds() -> None:
    rng = np.random.default_rng(3)
    n, reps = 32, 60
    culprit = rng.integers(1, n, size=reps)
    rates = np.where(np.arange(n)[None, :] < culprit[:, None], 0.0, 0.6)
    k = np.zeros((reps, n), dtype=np.int64)
    f = np.zeros((reps, n), dtype=np.int64)
    k[:, -1] = 20
    f[:, -1] = rng.binomial(20, 0.6, size=reps)
    res = run_rounds(rates, rng, 0.95, 8, boots=k, failures=f)
    right = np.array(res.culprit) == culprit
    assert all(res.reached) and right.mean() >= 0.9
    assert np.mean(res.rounds) < 12 and np.mean(res.boots) < 40
    assert all(1 <= b <= 8 * r for b, r in zip(res.boots, res.rounds, strict=True))


def test_empirical_prior_from_clean_nights_says_rare_if_at_all() -> None:
    fit = empirical_priors([(50, 0)] * 10)
    assert fit.fitted and fit.groups == 10 and fit.boots == 500 and fit.failures == 0
    p = fit.priors
    assert p.good_a / (p.good_a + p.good_b) < 0.002  # "rarely, if at all"
    assert 0.3 < p.baseline < 0.7  # the data cannot tell whether good builds fail at all
    assert (p.bad_a, p.bad_b) == (DEFAULT_PRIORS.bad_a, DEFAULT_PRIORS.bad_b)
    assert "0/500 failed" in fit.describe()


def test_empirical_prior_from_failing_nights_learns_the_rate() -> None:
    groups = [(50, k) for k in (1, 0, 2, 1, 1, 0, 2, 1, 1, 1)]  # 10/500 = 2%
    fit = empirical_priors(groups)
    p = fit.priors
    assert p.baseline >= 0.98  # a known-good build failed: good builds do fail
    assert 0.01 < p.good_a / (p.good_a + p.good_b) < 0.04
    assert p.good_a + p.good_b > 20  # the nights agree: more confident than Beta(1, 19)


def test_too_little_history_keeps_the_given_priors() -> None:
    base = Priors(good_a=2, good_b=30, baseline=0.4)
    fit = empirical_priors([(50, 0)] * (MIN_GROUPS - 1), base)
    assert not fit.fitted and fit.priors == base and "fixed priors" in fit.describe()
    with pytest.raises(ValueError):
        empirical_priors([(5, 6)] * 3)
