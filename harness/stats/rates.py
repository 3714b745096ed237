"""Single rates: the displayed interval (two-sided Clopper-Pearson: it covers at least its
confidence at every rate, where Wilson's covers 84% near 0.17/n, the rare-failure range
this lab lives in; ``benchmarks/bench_coverage.py``), one-sided Clopper-Pearson bounds for
claims, counts per cell and per signature. Pure and cached."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from harness.model import Outcome, Signature, SignatureCount


def _check(k: float, n: int, confidence: float = 0.95) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, x: float) -> bool:
        return self.low <= x <= self.high

    def __iter__(self) -> Iterator[float]:  # lo, hi = interval
        return iter((self.low, self.high))


@lru_cache(maxsize=65536)
def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided Wilson score interval; ``[0, 1]`` when there are no boots."""
    _check(k, n, confidence)
    if n == 0:
        return Interval(0.0, 1.0)
    from scipy import stats as sps  # SciPy costs 1 s to import: only when needed

    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence,
                                                     method="wilson")
    return Interval(max(0.0, float(ci.low)), min(1.0, float(ci.high)))


@lru_cache(maxsize=65536)
def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided exact (Clopper-Pearson) interval."""
    _check(k, n, confidence)
    if n == 0:
        return Interval(0.0, 1.0)
    from scipy import stats as sps  # SciPy costs 1 s to import: only when needed

    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence,
                                                     method="exact")
    return Interval(float(ci.low), float(ci.high))


def zero_failure_bound(n: int, confidence: float = 0.95) -> float:
    """Upper bound on the rate after ``n`` boots without a single event."""
    _check(0, n, confidence)
    if n == 0:
        return 1.0
    return 1.0 - (1.0 - confidence) ** (1.0 / n)


@lru_cache(maxsize=65536)
def upper_bound(k: float, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound: the rate is below it with ``confidence``.

    ``k`` may be fractional (used to project an observed rate onto more boots)."""
    _check(k, n, confidence)
    if n == 0 or k >= n:
        return 1.0
    if k == 0:
        return zero_failure_bound(n, confidence)
    from scipy import stats as sps

    return float(sps.beta.ppf(confidence, k + 1, n - k))


@lru_cache(maxsize=65536)
def lower_bound(k: float, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound: the rate is above it with ``confidence``."""
    _check(k, n, confidence)
    if n == 0 or k <= 0:
        return 0.0
    if k >= n:
        return (1.0 - confidence) ** (1.0 / n)
    from scipy import stats as sps

    return float(sps.beta.ppf(1.0 - confidence, k, n - k + 1))


DISPLAY_METHOD = "clopper-pearson"


def display_interval(k: int, n: int, confidence: float = 0.95) -> Interval:
    """The interval every report shows for a rate of a fixed-n cell: two-sided
    Clopper-Pearson (never below ``confidence`` coverage; about 5-10% wider than Wilson's
    at n = 20-200, see docs/results.md for the measured trade-off)."""
    return clopper_pearson(k, n, confidence)


@dataclass(frozen=True, kw_only=True)
class Rate:
    """``k`` of ``n`` with the displayed interval (``display_interval``; a cell stopped
    early shows its confidence sequence instead) and the one-sided Clopper-Pearson upper
    bound (claims), both at ``confidence``. ``value`` is None when ``n`` is 0. Also a
    difference of two rates in reports (``k = n = 0``, ``value`` the difference, its
    interval): ``upper`` is then None. The one definition of a rate: stats and reports."""

    k: int
    n: int
    value: float | None
    low: float
    high: float
    upper: float | None = None
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


def rate(k: int, n: int, confidence: float = 0.95, sequential: bool = False) -> Rate:
    """``sequential``: the cell was stopped by looking at its boots (adaptive), so the
    interval shown is the confidence sequence (valid at the stop), not the fixed-n one."""
    if sequential:
        from harness.stats.sequential import confidence_sequence

        ci = confidence_sequence(k, n, confidence)
    else:
        ci = display_interval(k, n, confidence)
    return Rate(k=k, n=n, value=k / n if n else None, low=ci.low, high=ci.high,
                upper=upper_bound(k, n, confidence), confidence=confidence)


@dataclass(frozen=True)
class CellCounts:
    """Boots of one cell per outcome class; ``n`` excludes infrastructure errors."""

    ok: int = 0
    vcpu_offline: int = 0
    boot_failure: int = 0
    infra_error: int = 0

    @property
    def n(self) -> int:
        """Guest boots: the denominator of every rate."""
        return self.ok + self.vcpu_offline + self.boot_failure

    @property
    def boots(self) -> int:
        """Every recorded boot, infrastructure errors included."""
        return self.n + self.infra_error

    def k(self, outcome: Outcome | str) -> int:
        return int(getattr(self, Outcome(outcome).value))

    def rate(self, outcome: Outcome | str, confidence: float = 0.95,
             sequential: bool = False) -> Rate:
        if Outcome(outcome) is Outcome.INFRA_ERROR:
            raise ValueError("infrastructure errors have no rate (not guest boots)")
        return rate(self.k(outcome), self.n, confidence, sequential)

    def __add__(self, other: CellCounts) -> CellCounts:
        return CellCounts(self.ok + other.ok, self.vcpu_offline + other.vcpu_offline,
                          self.boot_failure + other.boot_failure,
                          self.infra_error + other.infra_error)


def count_outcomes(outcomes: Iterable[Outcome | str]) -> CellCounts:
    c = Counter(Outcome(o) for o in outcomes)
    return CellCounts(c[Outcome.OK], c[Outcome.VCPU_OFFLINE], c[Outcome.BOOT_FAILURE],
                      c[Outcome.INFRA_ERROR])


def signature_counts(per_boot: Iterable[Iterable[Signature]]) -> tuple[SignatureCount, ...]:
    """Boots showing each signature (a boot counts once per signature), most first."""
    c: Counter[tuple[str, str]] = Counter()
    for sigs in per_boot:
        c.update({(s.kind, s.title) for s in sigs})
    return tuple(SignatureCount(kind=kind, title=title, count=n)
                 for (kind, title), n in sorted(c.items(), key=lambda x: (-x[1], x[0])))


def rates_of(counts: Mapping[str, CellCounts], outcome: Outcome | str,
             confidence: float = 0.95) -> dict[str, Rate]:
    """Convenience: the rate of one outcome class for every cell id."""
    return {cid: c.rate(outcome, confidence) for cid, c in counts.items()}

