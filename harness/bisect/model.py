"""The posterior over the culprit of a flaky failure (pure, vectorized numpy).

Builds ``0..n-1`` are in order; build 0 is known good, build ``n-1`` known bad. The culprit
``c`` is the first bad build, ``1 <= c <= n-1`` (uniform prior unless given). The data are,
per build, ``boots`` (guest boots, infrastructure errors left out) and ``failures``.

Two models of the failure rates, both integrated out analytically (Beta-Binomial):

* ``clean`` (model A): good builds never fail; bad builds fail at an unknown rate
  ``q ~ Beta(bad_a, bad_b)``. A failure on a build rules out every culprit after it.
* ``baseline`` (model B): good builds fail at an unknown baseline ``p0 ~ Beta(good_a,
  good_b)`` and bad builds at ``q``; the likelihood of a split is a product of two
  Beta-Binomial marginals, computed for every split at once with cumulative sums.

By default (``model="auto"``) the two are averaged (Bayesian model averaging): each split
``c`` carries the joint weight ``P(M) P(c) P(data | c, M)``, so the evidence chooses. A
failure of the known-good build (or of any build before every culprit still possible)
makes model A's likelihood zero: the campaign is then handled by model B alone, with no
threshold to tune. With clean good builds, model A wins by a Bayes factor that grows with
the number of clean boots, and the search runs at the speed of the clean model.

Binomial coefficients are the same for every split and model, so they are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaln

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ModelChoice = Literal["auto", "clean", "baseline"]
MODELS: tuple[ModelChoice, ...] = ("auto", "clean", "baseline")


@dataclass(frozen=True)
class Priors:
    """Beta priors of the two rates and the prior weight of the baseline model."""

    bad_a: float = 1.0  # q (failure rate of bad builds) ~ Beta(bad_a, bad_b): uniform
    bad_b: float = 1.0
    good_a: float = 1.0  # p0 (baseline of good builds, model B) ~ Beta(good_a, good_b):
    good_b: float = 19.0  # mean 5%, "good builds fail rarely if at all"
    baseline: float = 0.75  # prior probability of model B in "auto"

    def __post_init__(self) -> None:
        for name in ("bad_a", "bad_b", "good_a", "good_b"):
            if not getattr(self, name) > 0:
                raise ValueError(f"prior {name} must be > 0")
        if not 0.0 < self.baseline < 1.0:
            raise ValueError("prior weight of the baseline model must be in (0, 1)")


DEFAULT_PRIORS = Priors()


@dataclass(frozen=True)
class Split:
    """Sufficient statistics of every split (arrays indexed by the culprit ``c``, length
    ``n``; entry 0 is unused since build 0 is known good)."""

    fail_bad: FloatArray  # failures on builds >= c
    ok_bad: FloatArray  # clean boots on builds >= c
    fail_good: FloatArray  # failures on builds < c
    ok_good: FloatArray  # clean boots on builds < c


def as_counts(boots: Sequence[int] | IntArray, failures: Sequence[int] | IntArray
              ) -> tuple[IntArray, IntArray]:
    """Validate per-build counts (non-negative integers, failures <= boots, n >= 2)."""
    k = np.asarray(boots, dtype=np.int64)
    f = np.asarray(failures, dtype=np.int64)
    if k.ndim != 1 or k.shape != f.shape:
        raise ValueError("boots and failures must be two lists of the same length")
    if k.size < 2:
        raise ValueError("a bisection needs at least two builds (known good, known bad)")
    if (k < 0).any() or (f < 0).any() or (f > k).any():
        raise ValueError("counts must satisfy 0 <= failures <= boots")
    return k, f


def splits(boots: IntArray, failures: IntArray) -> Split:
    """Failures and clean boots on each side of every split, by cumulative sums (along the
    last axis: leading axes are independent campaigns)."""
    f = failures.astype(np.float64)
    s = (boots - failures).astype(np.float64)
    f_before = np.cumsum(f, axis=-1) - f  # builds < c
    s_before = np.cumsum(s, axis=-1) - s
    return Split(fail_bad=f.sum(axis=-1, keepdims=True) - f_before,
                 ok_bad=s.sum(axis=-1, keepdims=True) - s_before,
                 fail_good=f_before, ok_good=s_before)


def uniform_log_prior(n: int) -> FloatArray:
    lp = np.full(n, -np.log(n - 1))
    lp[0] = -np.inf
    return lp


def log_joint(boots: IntArray, failures: IntArray, priors: Priors = DEFAULT_PRIORS,
              model: ModelChoice = "auto", log_prior: FloatArray | None = None
              ) -> tuple[FloatArray, Split]:
    """``log P(M, c, data)`` up to a constant, shape ``(..., 2, n)``: row 0 model A
    (clean), row 1 model B (baseline); column ``c``; ``-inf`` where impossible (and at
    ``c=0``)."""
    sp = splits(boots, failures)
    if log_prior is None:
        log_prior = uniform_log_prior(boots.shape[-1])
    bad = betaln(priors.bad_a + sp.fail_bad, priors.bad_b + sp.ok_bad) \
        - betaln(priors.bad_a, priors.bad_b)
    good_b = betaln(priors.good_a + sp.fail_good, priors.good_b + sp.ok_good) \
        - betaln(priors.good_a, priors.good_b)
    good_a = np.where(sp.fail_good > 0, -np.inf, 0.0)
    w_b = {"auto": priors.baseline, "clean": 0.0, "baseline": 1.0}[model]
    with np.errstate(divide="ignore"):
        out = np.stack([np.log1p(-w_b) + log_prior + bad + good_a,
                        np.log(w_b) + log_prior + bad + good_b], axis=-2)
    return out, sp


@dataclass(frozen=True)
class Posterior:
    """The posterior after some data. ``culprit[c]`` is ``P(first bad build = c | data)``."""

    boots: tuple[int, ...]
    failures: tuple[int, ...]
    culprit: tuple[float, ...]
    baseline_weight: float  # P(model B | data): the evidence for failures on good builds
    log_evidence: float  # log P(data) up to the binomial coefficients

    @property
    def n(self) -> int:
        return len(self.culprit)

    @property
    def best(self) -> int:
        return int(np.argmax(self.culprit))

    @property
    def probability(self) -> float:
        return max(self.culprit)

    @property
    def entropy_bits(self) -> float:
        return entropy_bits(np.asarray(self.culprit))

    @property
    def total_boots(self) -> int:
        return sum(self.boots)

    def credible_set(self, mass: float = 0.95) -> tuple[int, ...]:
        """The fewest builds whose culprit probabilities add up to at least ``mass``."""
        p = np.asarray(self.culprit)
        order = np.argsort(-p, kind="stable")
        k = int(np.searchsorted(np.cumsum(p[order]), mass - 1e-12)) + 1
        return tuple(sorted(int(i) for i in order[:k]))


def logsumexp(x: FloatArray, axis: int | None = None) -> FloatArray:
    """``log(sum(exp(x)))`` without overflow (plain numpy: scipy's is slow on tiny arrays)."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


@dataclass(frozen=True)
class Evaluation:
    """Arrays the decision rule needs, computed once per step (internal, not a record)."""

    joint: FloatArray  # P(M, c | data), shape (..., 2, n)
    split: Split
    post: FloatArray  # P(c | data), shape (..., n)
    q: FloatArray  # E[q | c, data]: predictive failure rate of a bad build
    g: FloatArray  # predictive failure rate of a good build (models averaged given c)
    log_evidence: FloatArray  # shape (...)


def evaluate(boots: IntArray, failures: IntArray, priors: Priors = DEFAULT_PRIORS,
             model: ModelChoice = "auto", log_prior: FloatArray | None = None) -> Evaluation:
    """Everything the decision rule needs; leading axes of ``boots``/``failures`` are
    independent campaigns (the benchmark runs hundreds in lockstep)."""
    lj, sp = log_joint(boots, failures, priors, model, log_prior)
    m = lj.max(axis=(-2, -1), keepdims=True)
    if not np.isfinite(m).all():
        raise ValueError("the data are impossible under the clean model (a build before "
                         "every possible culprit failed): use the baseline model")
    joint = np.exp(lj - m)
    norm = joint.sum(axis=(-2, -1), keepdims=True)
    joint /= norm
    total = (np.log(norm) + m)[..., 0, 0]
    post = joint.sum(axis=-2)
    q = (priors.bad_a + sp.fail_bad) / (priors.bad_a + priors.bad_b + sp.fail_bad + sp.ok_bad)
    p0 = (priors.good_a + sp.fail_good) / (priors.good_a + priors.good_b + sp.fail_good
                                          + sp.ok_good)
    with np.errstate(invalid="ignore", divide="ignore"):
        wb = np.where(post > 0, joint[..., 1, :] / post, 0.0)
    return Evaluation(joint, sp, post, q, wb * p0, total)


def posterior(boots: Sequence[int] | IntArray, failures: Sequence[int] | IntArray,
              priors: Priors = DEFAULT_PRIORS, model: ModelChoice = "auto",
              prior: Sequence[float] | None = None) -> Posterior:
    """The exact posterior over the culprit; ``prior`` (optional) weights the culprits
    (entry 0 is ignored: build 0 is known good)."""
    k, f = as_counts(boots, failures)
    lp = None
    if prior is not None:
        w = np.asarray(prior, dtype=np.float64)
        if w.shape != k.shape or (w < 0).any() or not w[1:].sum() > 0:
            raise ValueError("prior: one non-negative weight per build, not all zero")
        with np.errstate(divide="ignore"):
            lp = np.log(w / w[1:].sum())
        lp[0] = -np.inf
    ev = evaluate(k, f, priors, model, lp)
    return Posterior(boots=tuple(int(x) for x in k), failures=tuple(int(x) for x in f),
                     culprit=tuple(float(x) for x in ev.post),
                     baseline_weight=float(ev.joint[1].sum()),
                     log_evidence=float(ev.log_evidence))


def entropy_bits(p: FloatArray) -> float:
    q = p[p > 0]
    return float(-(q * np.log2(q)).sum())
