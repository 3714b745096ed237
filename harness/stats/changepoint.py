"""The first bad night of a cell: a single change-point test on a sequence of binomial
counts (``k_i`` failures in ``n_i`` guest boots, night by night). Pure.

- **Is there an increase?** For every split ``t`` (nights ``t..`` after), a one-sided
  Fisher exact test of "the rate after is higher than before" on the pooled counts; the
  smallest p over the splits times the number of splits (Bonferroni over the splits,
  valid whatever their dependence) is the cell's p-value. Across cells the caller
  adjusts these with Holm.
- **Which night?** Given a change, the posterior over its night: a rate before and a
  rate after, each with a uniform Beta(1, 1) prior, and every measured night equally
  likely a priori; the night with the highest posterior probability is the first bad
  night and that probability is its confidence. Only a night with guest boots can be
  the first bad one: an interrupted or unreachable night says nothing either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChangePoint:
    index: int | None  # the first bad night (index into the sequence); None: no increase
    p_value: float  # of "the rate went up at some night" (Bonferroni over the splits)
    confidence: float  # posterior probability of ``index`` given a change (0 if none)
    before: float | None  # pooled rate before that night
    after: float | None  # pooled rate from that night on
    posterior: tuple[float, ...] = ()  # per night: probability it is the first bad one


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _fisher_greater(k_after: int, n_after: int, k_before: int, n_before: int) -> float:
    """One-sided Fisher p of "after > before" (hypergeometric upper tail)."""
    total, n = k_after + k_before, n_after + n_before
    if total == 0 or n_after == 0 or n_before == 0:
        return 1.0
    hi = min(total, n_after)
    log_den = math.lgamma(n + 1) - math.lgamma(total + 1) - math.lgamma(n - total + 1)
    p = 0.0
    for x in range(k_after, hi + 1):
        if total - x > n_before:
            continue
        log_num = (math.lgamma(n_after + 1) - math.lgamma(x + 1) - math.lgamma(n_after - x + 1)
                   + math.lgamma(n_before + 1) - math.lgamma(total - x + 1)
                   - math.lgamma(n_before - total + x + 1))
        p += math.exp(log_num - log_den)
    return min(1.0, p)


def first_bad(ks: Sequence[int], ns: Sequence[int]) -> ChangePoint:
    """The change point of ``ks[i]`` events in ``ns[i]`` trials (oldest first)."""
    if len(ks) != len(ns):
        raise ValueError("ks and ns differ in length")
    measured = [i for i, n in enumerate(ns) if n > 0]
    splits = measured[1:]  # the first measured night has nothing before it
    if not splits:
        return ChangePoint(None, 1.0, 0.0, None, None, tuple(0.0 for _ in ks))
    K, N = sum(ks), sum(ns)
    best_p, logs = 1.0, []
    for t in splits:
        kb, nb = sum(ks[:t]), sum(ns[:t])
        best_p = min(best_p, _fisher_greater(K - kb, N - nb, kb, nb))
        logs.append(_log_beta(kb + 1, nb - kb + 1) + _log_beta(K - kb + 1, N - nb - K + kb + 1))
    p = min(1.0, best_p * len(splits))
    top = max(logs)
    weights = [math.exp(x - top) for x in logs]
    total = sum(weights)
    post = [0.0] * len(ks)
    for t, w in zip(splits, weights, strict=True):
        post[t] = w / total
    t_best = max(splits, key=lambda t: post[t])
    kb, nb = sum(ks[:t_best]), sum(ns[:t_best])
    before, after = kb / nb, (K - kb) / (N - nb)
    if after <= before:
        return ChangePoint(None, p, 0.0, before, after, tuple(post))
    return ChangePoint(t_best, p, post[t_best], before, after, tuple(post))
