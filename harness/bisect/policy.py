"""Which builds to boot next, and how many times: expected information gain (pure).

The value of a set of boots is the mutual information ``I(C; Y)`` between the culprit ``C``
and their outcomes ``Y``, i.e. the expected drop of the posterior entropy of ``C`` in bits.
It is exact under the posterior predictive of ``harness.bisect.model`` (rates integrated
out, the two models averaged), so nothing here is a heuristic but the greedy order:

* one boot (``information_per_build``): for every build at once with cumulative sums,
  ``I = h(P(fail)) - sum_c P(c) h(P(fail | c))``. With clean good builds and a known rate
  ``q`` the best build sits where the posterior mass of culprits at or before it is about
  ``1/(q(1 + 2^{h(q)/q}))`` (0.37 for q = 0.05, 0.41 for q = 0.6), not at the median.
* a round of several parallel boots (``choose_round``): boots are added one at a time,
  each to the build that adds the most joint information to the round so far. The joint
  information of a round is computed exactly by enumerating its outcomes (counts per
  build; boots of one round at bad builds are correlated through the shared rate, which
  the Beta-Binomial form keeps). Rounds are capped at ``max_outcomes`` joint outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, gammaln

from harness.bisect.model import (
    DEFAULT_PRIORS,
    Evaluation,
    FloatArray,
    IntArray,
    ModelChoice,
    Priors,
    as_counts,
    evaluate,
    logsumexp,
)

LOG2 = np.log(2.0)


def _h(p: FloatArray) -> FloatArray:
    """Binary entropy in bits (0 at 0 and 1)."""
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def information_per_build(post: FloatArray, q: FloatArray, g: FloatArray) -> FloatArray:
    """Expected information (bits) of one boot at each build (arrays of ``Evaluation``).

    A boot at build ``i`` fails with ``q[c]`` if ``c <= i`` (the build is bad) and with
    ``g[c]`` otherwise."""
    wq, wg = post * q, post * g
    p_fail = np.cumsum(wq, axis=-1) + (wg.sum(axis=-1, keepdims=True) - np.cumsum(wg, axis=-1))
    hq, hg = post * _h(q), post * _h(g)
    h_given_c = np.cumsum(hq, axis=-1) + (hg.sum(axis=-1, keepdims=True)
                                          - np.cumsum(hg, axis=-1))
    return np.maximum(_h(p_fail) - h_given_c, 0.0)


@dataclass(frozen=True)
class Round:
    """The boots of one round: ``boots[i]`` more boots of build ``i``, and their expected
    information in bits."""

    boots: tuple[tuple[int, int], ...]  # (build index, number of boots), by build
    information: float

    @property
    def total(self) -> int:
        return sum(m for _, m in self.boots)

    def as_dict(self) -> dict[int, int]:
        return dict(self.boots)


def round_information(ev: Evaluation, priors: Priors, alloc: Mapping[int, int]) -> float:
    """Exact ``I(C; Y)`` in bits for ``alloc[i]`` boots at build ``i`` (all outcomes
    enumerated; the caller keeps their number small)."""
    items = sorted((b, m) for b, m in alloc.items() if m > 0)
    if not items:
        return 0.0
    builds = np.array([b for b, _ in items])
    ms = np.array([m for _, m in items])
    joint, sp, post = ev.joint, ev.split, ev.post
    live = np.flatnonzero(post > 0)
    if live.size <= 1:
        return 0.0
    grids = np.indices(tuple(ms + 1)).reshape(len(ms), -1).T  # (outcomes, builds)
    log_binom = (gammaln(ms + 1) - gammaln(grids + 1) - gammaln(ms - grids + 1)).sum(axis=1)
    bad = (builds[:, None] >= live[None, :]).astype(np.float64)  # (builds, culprits)
    y_bad = grids @ bad
    m_bad = ms @ bad
    y_good = grids.sum(axis=1)[:, None] - y_bad
    m_good = ms.sum() - m_bad
    a, b = priors.bad_a + sp.fail_bad[live], priors.bad_b + sp.ok_bad[live]
    la = betaln(a + y_bad, b + m_bad - y_bad) - betaln(a, b)
    ga, gb = priors.good_a + sp.fail_good[live], priors.good_b + sp.ok_good[live]
    lg_b = betaln(ga + y_good, gb + m_good - y_good) - betaln(ga, gb)
    lg_a = np.where(y_good > 0, -np.inf, 0.0)
    pc = post[live]
    with np.errstate(divide="ignore"):
        wa = np.log(joint[0, live] / pc)
        wb = np.log(joint[1, live] / pc)
    # log P(y | c): the models mixed by their weights given c
    lyc = log_binom[:, None] + la + np.logaddexp(wa + lg_a, wb + lg_b)
    ly = logsumexp(lyc + np.log(pc), axis=1)
    h_y = -(np.exp(ly) * ly).sum()
    with np.errstate(invalid="ignore"):
        h_yc = -np.nansum(np.exp(lyc) * lyc, axis=0)
    return max(float((h_y - (pc * h_yc).sum()) / LOG2), 0.0)


def choose_round(boots: IntArray, failures: IntArray, slots: int = 1,
                 priors: Priors = DEFAULT_PRIORS, model: ModelChoice = "auto",
                 candidates: int = 8, max_outcomes: int = 4096,
                 usable: IntArray | None = None) -> Round:
    """The next round of at most ``slots`` boots (greedy by joint information).

    ``usable`` (optional, bool per build) leaves out builds that cannot be booted (for
    instance a build that only ever gave infrastructure errors)."""
    if slots < 1:
        raise ValueError("slots must be >= 1")
    k, f = as_counts(boots, failures)
    return choose_from(evaluate(k, f, priors, model), slots, priors, candidates,
                       max_outcomes, usable)


def choose_from(ev: Evaluation, slots: int = 1, priors: Priors = DEFAULT_PRIORS,
                candidates: int = 8, max_outcomes: int = 4096,
                usable: IntArray | None = None) -> Round:
    """``choose_round`` from an ``Evaluation`` already made (same priors)."""
    if slots < 1:
        raise ValueError("slots must be >= 1")
    gain = information_per_build(ev.post, ev.q, ev.g)
    if usable is not None:
        gain = np.where(np.asarray(usable, dtype=bool), gain, -1.0)
    best = int(np.argmax(gain))
    if gain[best] < 0:
        raise ValueError("no build can be booted")
    if slots == 1:
        return Round(((best, 1),), float(max(gain[best], 0.0)))
    order = [int(i) for i in np.argsort(-gain, kind="stable")[:candidates] if gain[i] >= 0]
    alloc: dict[int, int] = {}
    info = 0.0
    for _ in range(slots):
        choice: tuple[float, int] | None = None
        for b in dict.fromkeys([*alloc, *order]):
            trial = dict(alloc)
            trial[b] = trial.get(b, 0) + 1
            if int(np.prod([m + 1 for m in trial.values()])) > max_outcomes:
                continue
            value = round_information(ev, priors, trial)
            if choice is None or value > choice[0] + 1e-12:
                choice = (value, b)
        if choice is None:
            break
        info = choice[0]
        alloc[choice[1]] = alloc.get(choice[1], 0) + 1
    return Round(tuple(sorted(alloc.items())), info)
