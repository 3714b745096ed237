"""Bisection campaigns against pure Bernoulli builds (no lab): for the benchmark, for sizing
a campaign before booting anything, and for tests of the decision rule.

``rates[i]`` is the true failure probability of build ``i``; a boot is one Bernoulli draw
from a seeded generator. The loop is the same decision rule the real campaign uses
(``choose_round``), stopped at the target confidence or the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.bisect.model import DEFAULT_PRIORS, ModelChoice, Priors, evaluate
from harness.bisect.policy import choose_from, information_per_build


@dataclass(frozen=True)
class SimResult:
    culprit: int  # the build with the largest posterior when the campaign stopped
    probability: float
    boots: int
    rounds: int
    reached: bool  # stopped at the target confidence (not at the budget)


def run_campaign(rates: Sequence[float], rng: np.random.Generator, confidence: float = 0.95,
                 budget: int = 100_000, slots: int = 1, priors: Priors = DEFAULT_PRIORS,
                 model: ModelChoice = "auto", boots: Sequence[int] | None = None,
                 failures: Sequence[int] | None = None) -> SimResult:
    """One simulated campaign, from no data or from recorded ``boots``/``failures``
    (``boots`` in the result counts only the campaign's own)."""
    p = np.asarray(rates, dtype=np.float64)
    n = p.size
    k = np.zeros(n, dtype=np.int64) if boots is None else np.array(boots, dtype=np.int64)
    f = np.zeros(n, dtype=np.int64) if failures is None else np.array(failures,
                                                                      dtype=np.int64)
    start = int(k.sum())
    rounds = 0
    while True:
        ev = evaluate(k, f, priors, model)
        post = ev.post
        best = int(np.argmax(post))
        spent = int(k.sum()) - start
        if post[best] >= confidence or spent >= budget:
            return SimResult(best, float(post[best]), spent, rounds,
                             bool(post[best] >= confidence))
        rnd = choose_from(ev, min(slots, budget - spent), priors)
        for b, m in rnd.boots:
            k[b] += m
            f[b] += int(rng.binomial(m, p[b]))
        rounds += 1


def step_rates(n: int, culprit: int, bad: float, good: float = 0.0) -> list[float]:
    """Rates of ``n`` builds whose first bad build is ``culprit``."""
    return [good if i < culprit else bad for i in range(n)]


@dataclass(frozen=True)
class BatchResult:
    """Per campaign of ``run_many``: the culprit found, its probability, the boots the
    campaign added, and whether it reached the confidence."""

    culprit: tuple[int, ...]
    probability: tuple[float, ...]
    boots: tuple[int, ...]
    reached: tuple[bool, ...]


def run_many(rates: np.ndarray, rng: np.random.Generator, confidence: float = 0.95,
             budget: int = 100_000, boots: np.ndarray | None = None,
             failures: np.ndarray | None = None, priors: Priors = DEFAULT_PRIORS,
             model: ModelChoice = "auto") -> BatchResult:
    """Many one-boot-per-round campaigns in lockstep (``rates`` has one row per campaign),
    optionally starting from recorded ``boots``/``failures``; same rule as ``run_campaign``,
    vectorized across campaigns (each step is one numpy pass over all active ones)."""
    p = np.asarray(rates, dtype=np.float64)
    r, n = p.shape
    k = np.zeros((r, n), dtype=np.int64) if boots is None else np.array(boots, dtype=np.int64)
    f = np.zeros((r, n), dtype=np.int64) if failures is None else np.array(failures,
                                                                          dtype=np.int64)
    start = k.sum(axis=1)
    culprit = np.zeros(r, dtype=np.int64)
    prob = np.zeros(r)
    reached = np.zeros(r, dtype=bool)
    active = np.arange(r)
    while active.size:
        ev = evaluate(k[active], f[active], priors, model)
        best = ev.post.argmax(axis=1)
        top = ev.post[np.arange(active.size), best]
        spent = k[active].sum(axis=1) - start[active]
        done = (top >= confidence) | (spent >= budget)
        culprit[active[done]] = best[done]
        prob[active[done]] = top[done]
        reached[active[done]] = top[done] >= confidence
        keep = ~done
        if not keep.any():
            break
        gain = information_per_build(ev.post[keep], ev.q[keep], ev.g[keep])
        rows = active[keep]
        pick = gain.argmax(axis=1)
        k[rows, pick] += 1
        f[rows, pick] += rng.random(rows.size) < p[rows, pick]
        active = rows
    return BatchResult(tuple(int(x) for x in culprit), tuple(float(x) for x in prob),
                       tuple(int(x) for x in k.sum(axis=1) - start),
                       tuple(bool(x) for x in reached))


@dataclass(frozen=True)
class RoundsResult:
    """Per campaign of ``run_rounds``: as ``BatchResult``, plus the rounds it took."""

    culprit: tuple[int, ...]
    probability: tuple[float, ...]
    boots: tuple[int, ...]
    reached: tuple[bool, ...]
    rounds: tuple[int, ...]


def run_rounds(rates: np.ndarray, rng: np.random.Generator, confidence: float = 0.95,
               slots: int = 8, budget: int = 100_000, boots: np.ndarray | None = None,
               failures: np.ndarray | None = None, priors: Priors = DEFAULT_PRIORS,
               model: ModelChoice = "auto", keep: float | None = None) -> RoundsResult:
    """Many campaigns in lockstep, each round spread over the builds by ``spread_rounds``
    (what ``harness bisect`` does with ``slots`` free slots), from recorded
    ``boots``/``failures``; one numpy pass per round over all campaigns still running."""
    from harness.bisect.rounds import KEEP, spread_rounds

    p = np.asarray(rates, dtype=np.float64)
    r, n = p.shape
    k = np.zeros((r, n), dtype=np.int64) if boots is None else np.array(boots, dtype=np.int64)
    f = np.zeros((r, n), dtype=np.int64) if failures is None else np.array(failures,
                                                                          dtype=np.int64)
    start = k.sum(axis=1)
    culprit = np.zeros(r, dtype=np.int64)
    prob = np.zeros(r)
    reached = np.zeros(r, dtype=bool)
    rounds = np.zeros(r, dtype=np.int64)
    active = np.arange(r)
    while active.size:
        ev = evaluate(k[active], f[active], priors, model)
        best = ev.post.argmax(axis=1)
        top = ev.post[np.arange(active.size), best]
        spent = k[active].sum(axis=1) - start[active]
        done = (top >= confidence) | (spent >= budget)
        culprit[active[done]] = best[done]
        prob[active[done]] = top[done]
        reached[active[done]] = top[done] >= confidence
        keep_rows = ~done
        if not keep_rows.any():
            break
        rows = active[keep_rows]
        alloc = spread_rounds(ev.post[keep_rows], ev.q[keep_rows], ev.g[keep_rows], slots,
                              KEEP if keep is None else keep)
        k[rows] += alloc
        f[rows] += rng.binomial(alloc, p[rows])
        rounds[rows] += 1
        active = rows
    return RoundsResult(tuple(int(x) for x in culprit), tuple(float(x) for x in prob),
                        tuple(int(x) for x in k.sum(axis=1) - start),
                        tuple(bool(x) for x in reached), tuple(int(x) for x in rounds))
