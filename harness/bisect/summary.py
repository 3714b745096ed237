"""What a bisection found, with the frequentist checks a reviewer asks for (pure).

* the culprit and its posterior probability, the credible set;
* boots and failures at the culprit and at the build before, each with a Clopper-Pearson
  interval, and Fisher's exact test (one-sided: the culprit fails more often), whose
  p-value is descriptive only: the split was chosen from the same boots;
* the same for all builds from the culprit on against all builds before it;
* a check for a second change point on either side of the culprit: the Bayes factor of
  "two rates split at some build" against "one rate" (Beta-Binomial, exact), with the most
  likely split, and a permutation test of homogeneity (chi-square statistic, seeded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln
from scipy.stats import binomtest, fisher_exact

from harness.bisect.model import Posterior, logsumexp

# Bayes factor above which a second change point is reported (Jeffreys: "strong")
SECOND_CHANGE_BF = 10.0


@dataclass(frozen=True)
class Counts:
    """Boots and failures of one build (or of a range), with a Clopper-Pearson interval."""

    boots: int
    failures: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.failures / self.boots if self.boots else float("nan")


def counts(boots: int, failures: int, confidence: float = 0.95) -> Counts:
    if boots == 0:
        return Counts(0, 0, 0.0, 1.0)
    ci = binomtest(failures, boots).proportion_ci(confidence, method="exact")
    return Counts(boots, failures, float(ci.low), float(ci.high))


def fisher_greater(a: Counts, b: Counts) -> float:
    """One-sided p-value of Fisher's exact test that ``a`` fails more often than ``b``."""
    if a.boots == 0 or b.boots == 0:
        return 1.0
    table = [[a.failures, a.boots - a.failures], [b.failures, b.boots - b.failures]]
    return float(fisher_exact(table, alternative="greater").pvalue)


@dataclass(frozen=True)
class ChangeCheck:
    """Do the builds of one side of the culprit share one failure rate?"""

    side: str  # "bad" (culprit and after) or "good" (before the culprit)
    first: int  # builds first..last (inclusive) were looked at
    last: int
    builds_with_data: int
    log10_bayes_factor: float  # two rates (split somewhere) vs one; > 1: strong evidence
    split: int | None  # most likely first build of the second segment
    before: Counts | None  # counts on each side of that split
    after: Counts | None
    p_homogeneity: float | None  # permutation test of equal rates (None: < 2 builds)

    @property
    def suspicious(self) -> bool:
        return bool(self.log10_bayes_factor > np.log10(SECOND_CHANGE_BF))


def second_change(boots: tuple[int, ...], failures: tuple[int, ...], first: int, last: int,
                  side: str, seed: int = 0, resamples: int = 4000) -> ChangeCheck:
    """The check on builds ``first..last``: Beta(1,1) rates, uniform split prior over the
    builds with data."""
    idx = [i for i in range(first, last + 1) if boots[i] > 0]
    if len(idx) < 2:
        return ChangeCheck(side, first, last, len(idx), 0.0, None, None, None, None)
    k = np.array([boots[i] for i in idx], dtype=np.float64)
    f = np.array([failures[i] for i in idx], dtype=np.float64)
    s = k - f
    one = betaln(1 + f.sum(), 1 + s.sum())
    cf, cs = np.cumsum(f)[:-1], np.cumsum(s)[:-1]  # left part ends at idx[j]
    two = betaln(1 + cf, 1 + cs) + betaln(1 + f.sum() - cf, 1 + s.sum() - cs)
    log_bf = float(logsumexp(two) - np.log(two.size) - one)
    j = int(np.argmax(two))
    split = idx[j + 1]
    before = counts(int(cf[j] + cs[j]), int(cf[j]))
    after = counts(int(k.sum() - cf[j] - cs[j]), int(f.sum() - cf[j]))
    return ChangeCheck(side, first, last, len(idx), float(log_bf / np.log(10)), split, before,
                       after, _permutation_homogeneity(k.astype(int), f.astype(int), seed,
                                                       resamples))


def _chi2(fails: np.ndarray, k: np.ndarray, total_f: float) -> np.ndarray:
    expected = k * total_f / k.sum()
    exp_ok = k - expected
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (fails - expected) ** 2 / expected + ((k - fails) - exp_ok) ** 2 / exp_ok
    return np.nansum(t, axis=-1)


def _permutation_homogeneity(k: np.ndarray, f: np.ndarray, seed: int, resamples: int
                             ) -> float:
    total_f = int(f.sum())
    if total_f == 0 or total_f == int(k.sum()):
        return 1.0
    observed = _chi2(f.astype(float), k.astype(float), total_f)
    rng = np.random.default_rng(seed)
    # permuting outcomes among boots = drawing the failures per build hypergeometrically
    draws = rng.multivariate_hypergeometric(k, total_f, size=resamples)
    stats = _chi2(draws.astype(float), k.astype(float), total_f)
    return float((1 + np.sum(stats >= observed - 1e-9)) / (1 + resamples))


@dataclass(frozen=True)
class Summary:
    culprit: int
    probability: float
    total_boots: int
    credible_set: tuple[int, ...]
    baseline_weight: float
    at_culprit: Counts
    before_culprit: Counts
    p_culprit_vs_before: float  # Fisher, one-sided; descriptive: the split was chosen
    # from the same data, so it is no test (the posterior is the claim)
    bad_side: Counts  # builds >= culprit
    good_side: Counts  # builds < culprit
    p_bad_vs_good: float
    checks: tuple[ChangeCheck, ...]

    @property
    def second_change_suspected(self) -> bool:
        return any(c.suspicious for c in self.checks)


def summarize(post: Posterior, confidence: float = 0.95, seed: int = 0) -> Summary:
    c = post.best
    k, f = post.boots, post.failures
    at = counts(k[c], f[c], confidence)
    before = counts(k[c - 1], f[c - 1], confidence) if c > 0 else counts(0, 0)
    bad = counts(sum(k[c:]), sum(f[c:]), confidence)
    good = counts(sum(k[:c]), sum(f[:c]), confidence)
    checks = (second_change(k, f, c, post.n - 1, "bad", seed),
              second_change(k, f, 0, c - 1, "good", seed))
    return Summary(c, post.probability, post.total_boots, post.credible_set(confidence),
                   post.baseline_weight, at, before, fisher_greater(at, before), bad, good,
                   fisher_greater(bad, good), checks)
