"""Empirical-Bayes priors for a campaign from what the lab already knows (pure).

The fixed constants of ``Priors`` (good builds fail at ``p0 ~ Beta(1, 19)``, the baseline
model weighs 0.75) say nothing about this lab. The store does: the known-good build has
been booted in this cell night after night, and earlier campaigns booted good builds too.
Each such group (one run's boots and failures of a build known to be good) is a draw from
the lab's "good builds". ``empirical_priors`` fits them by maximum marginal likelihood, with
the campaign's own two worlds: with probability ``1 - w`` good builds never fail (model A)
and with probability ``w`` they fail, each group at its own ``p0 ~ Beta(mu s, (1 - mu)
s)`` (model B): ``L = (1 - w) [no failure at all] + w prod_g BetaBinomial(k_g; n_g)``.
``w`` becomes the prior weight of the baseline model and ``(mu, s)`` its Beta prior. A weak
Beta(2, 2) hyperprior on ``w`` keeps it off 0 and 1, and the grids bound ``mu`` to [0.05%,
30%] and ``s`` to [2, 2000]. With every group clean the fit says "if good builds fail at
all, it is rarely" (``mu`` at its floor; ``w`` stays near 1/2, the data cannot tell), with
failures it says "they fail, at about this rate" (``w`` near 1, ``mu`` near the observed
rate, ``s`` as concentrated as the groups agree).

With fewer than ``MIN_GROUPS`` groups the fixed priors stay (nothing to fit). The bad
builds' rate keeps its uniform prior (earlier campaigns' bad builds are other bugs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.special import betaln

from harness.bisect.model import DEFAULT_PRIORS, Priors

MIN_GROUPS = 3
MU = np.geomspace(0.0005, 0.3, 40)
STRENGTH = np.geomspace(2.0, 2000.0, 16)
W = np.linspace(0.01, 0.99, 99)


@dataclass(frozen=True)
class Fitted:
    """The priors fitted from ``groups`` groups of ``boots`` boots with ``failures``."""

    priors: Priors
    groups: int
    boots: int
    failures: int
    fitted: bool  # False: too few groups, the fixed priors were kept

    def describe(self) -> str:
        if not self.fitted:
            return (f"fixed priors (only {self.groups} earlier group(s) of known-good boots "
                    f"in the store; {MIN_GROUPS} needed)")
        p = self.priors
        mean = p.good_a / (p.good_a + p.good_b)
        return (f"empirical Bayes from {self.groups} earlier runs of known-good builds "
                f"({self.failures}/{self.boots} failed): P(good builds fail) "
                f"{p.baseline:.2f}, their rate ~ {100 * mean:.2g}% (Beta({p.good_a:.3g}, "
                f"{p.good_b:.3g}))")


def empirical_priors(groups: Sequence[tuple[int, int]],
                     base: Priors = DEFAULT_PRIORS) -> Fitted:
    """Fit the good builds' prior and the baseline model's weight to ``groups`` of
    ``(boots, failures)`` (one per earlier run of a known-good build in the cell)."""
    g = [(int(n), int(k)) for n, k in groups if n > 0]
    for n, k in g:
        if not 0 <= k <= n:
            raise ValueError("each group needs 0 <= failures <= boots")
    total_n = sum(n for n, _ in g)
    total_k = sum(k for _, k in g)
    if len(g) < MIN_GROUPS:
        return Fitted(base, len(g), total_n, total_k, False)
    ns = np.array([x for x, _ in g], dtype=np.float64)[:, None, None]
    ks = np.array([y for _, y in g], dtype=np.float64)[:, None, None]
    a = (MU[:, None] * STRENGTH[None, :])[None]
    b = ((1 - MU[:, None]) * STRENGTH[None, :])[None]
    log_bb = (betaln(a + ks, b + ns - ks) - betaln(a, b)).sum(axis=0)  # (mu, s)
    w = W[:, None, None]
    clean = 0.0 if total_k == 0 else -np.inf
    with np.errstate(divide="ignore"):
        ll = np.logaddexp(np.log1p(-w) + clean, np.log(w) + log_bb[None])
    ll = ll + (np.log(W) + np.log1p(-W))[:, None, None]  # Beta(2, 2) on w
    i, j, m = np.unravel_index(int(np.argmax(ll)), ll.shape)
    mu, s = float(MU[j]), float(STRENGTH[m])
    # a failure of a known-good build refutes model A outright (the campaign's own data
    # say so too): the weight is then as high as the grid goes, not the hyperprior's mode
    weight = float(W[-1]) if total_k else float(W[i])
    pri = replace(base, good_a=mu * s, good_b=(1 - mu) * s, baseline=weight)
    return Fitted(pri, len(g), total_n, total_k, True)
