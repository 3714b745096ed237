"""Statistics people can trust: pure functions over counts (no I/O, no state).

API (everything takes plain counts; ``k`` events out of ``n`` guest boots):

- ``wilson(k, n, confidence)`` -> ``Interval``: two-sided Wilson score interval, for display.
- ``upper_bound(k, n, confidence)`` / ``lower_bound(...)``: one-sided Clopper-Pearson
  bounds, for claims ("vCPU-offline rate below 1.2% with 95% confidence").
  ``zero_failure_bound(n, confidence)`` = ``1 - (1 - C) ** (1 / n)`` (the k = 0 case).
- ``rate(k, n)`` -> ``Rate`` (value, Wilson low/high, one-sided CP upper bound).
- ``CellCounts`` / ``count_outcomes(outcomes)``: boots per outcome class; ``n`` (the
  denominator of every rate) excludes infrastructure errors.
- ``signature_counts(signature_lists)``: boots per signature, most frequent first.
- ``judge(counts, expect)`` -> ``Judgement``: the cell's verdict ``pass`` / ``fail`` /
  ``undecided`` / ``not_judged`` against its ``Expectation`` (rules in docs/results.md).
- ``boots_to_decide(k, n, maximum, confidence)``: more boots that would decide an
  undecided class if the observed rate held.
- ``compare(label, a, b, outcome, alternative)`` -> ``Comparison``: one-sided Boschloo
  exact test (Fisher's exact test above ``BOSCHLOO_MAX_TABLE``) and Newcombe's hybrid
  score interval for the difference of rates a - b.
- ``holm(p_values)`` and ``adjust(comparisons)``: Holm step-down correction of a family.
- ``compare_along(cells, axis, a, b, by=..., outcome=...)``: pool cells by an axis or host
  attribute (e.g. ``numa_patch`` true vs false for each guest) and compare, Holm-adjusted.
- ``sprt_decision(k, n, p0, p1, alpha, beta)``: Wald's sequential probability ratio test,
  for adaptive stopping ("accept_h0" rate <= p0, "accept_h1" rate >= p1, "continue").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

from scipy import stats as sps

from harness.classify.result import SignatureCount
from harness.model import Cell, Expectation, Outcome, Signature

Alternative = Literal["greater", "less", "two-sided"]
Status = Literal["pass", "fail", "undecided", "not_judged"]
JUDGED = (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE)

# Boschloo's exact test enumerates all n_a x n_b tables: ~0.4 s at 300 x 300, ~11 s at
# 1000 x 1000. Above this table size Fisher's exact test is used (Boschloo is uniformly
# more powerful than Fisher, so Fisher's p-value is larger: claims stay valid).
BOSCHLOO_MAX_TABLE = 90_000
MAX_BOOTS_TO_DECIDE = 10_000_000


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


@lru_cache(maxsize=65536)
def wilson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided Wilson score interval; ``[0, 1]`` when there are no boots."""
    _check(k, n, confidence)
    if n == 0:
        return Interval(0.0, 1.0)
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence,
                                                     method="wilson")
    return Interval(max(0.0, float(ci.low)), min(1.0, float(ci.high)))


@lru_cache(maxsize=65536)
def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> Interval:
    """Two-sided exact (Clopper-Pearson) interval."""
    _check(k, n, confidence)
    if n == 0:
        return Interval(0.0, 1.0)
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
    return float(sps.beta.ppf(confidence, k + 1, n - k))


@lru_cache(maxsize=65536)
def lower_bound(k: float, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower bound: the rate is above it with ``confidence``."""
    _check(k, n, confidence)
    if n == 0 or k <= 0:
        return 0.0
    if k >= n:
        return (1.0 - confidence) ** (1.0 / n)
    return float(sps.beta.ppf(1.0 - confidence, k, n - k + 1))


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` with the Wilson interval (display) and the one-sided Clopper-Pearson
    upper bound (claims), both at ``confidence``. ``value`` is None when ``n`` is 0."""

    k: int
    n: int
    value: float | None
    low: float
    high: float
    upper: float
    confidence: float = 0.95

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


def rate(k: int, n: int, confidence: float = 0.95) -> Rate:
    ci = wilson(k, n, confidence)
    return Rate(k, n, k / n if n else None, ci.low, ci.high, upper_bound(k, n, confidence),
                confidence)


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

    def rate(self, outcome: Outcome | str, confidence: float = 0.95) -> Rate:
        if Outcome(outcome) is Outcome.INFRA_ERROR:
            raise ValueError("infrastructure errors have no rate (not guest boots)")
        return rate(self.k(outcome), self.n, confidence)

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
    return tuple(SignatureCount(kind, title, n)
                 for (kind, title), n in sorted(c.items(), key=lambda x: (-x[1], x[0])))


# --- verdicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassJudgement:
    """One outcome class of one cell against its maximum acceptable rate."""

    outcome: str
    k: int
    n: int
    maximum: float
    confidence: float
    status: Status
    lower: float  # one-sided CP lower bound at confidence
    upper: float  # one-sided CP upper bound at confidence
    more_boots: int | None  # None: decided, or the observed rate never decides it
    statement: str


@dataclass(frozen=True)
class Judgement:
    """A cell's verdict: ``fail`` if any judged class fails, ``pass`` if all pass,
    ``not_judged`` when the expectation judges nothing, else ``undecided``."""

    status: Status
    classes: tuple[ClassJudgement, ...]
    more_boots: int | None  # undecided: boots that decide every undecided class
    statement: str


def _pct(x: float) -> str:
    if x == 0:
        return "0%"
    if x >= 0.1:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.2g}%"


@lru_cache(maxsize=65536)
def boots_to_decide(k: int, n: int, maximum: float, confidence: float = 0.95) -> int | None:
    """Additional boots after which the class would be decided if the observed rate
    ``k/n`` held exactly; None when it never would (observed rate equal to the maximum,
    or more than ``MAX_BOOTS_TO_DECIDE``). 0 when already decided."""
    _check(k, n, confidence)
    if n == 0:
        if maximum <= 0:
            return 1
        # no data: assume the best case (no events), the zero-failure requirement
        return _zero_failure_boots(maximum, confidence)
    if _decided(k, n, maximum, confidence):
        return 0
    p = k / n
    if p == maximum:
        return None
    if p == 0 and maximum > 0:
        return max(0, _zero_failure_boots(maximum, confidence) - n)

    def decides(total: int) -> bool:
        return _decided(p * total, total, maximum, confidence)

    hi = n * 2
    while not decides(hi):
        if hi > MAX_BOOTS_TO_DECIDE:
            return None
        hi *= 2
    lo = n  # not deciding
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid
    return hi - n


def _zero_failure_boots(maximum: float, confidence: float) -> int:
    """Smallest n with zero_failure_bound(n) < maximum (e.g. 299 for 1% at 95%)."""
    if maximum >= 1:
        return 1
    return math.floor(math.log(1 - confidence) / math.log(1 - maximum)) + 1


def _decided(k: float, n: int, maximum: float, confidence: float) -> bool:
    if maximum <= 0:
        return n > 0
    return (upper_bound(k, n, confidence) < maximum
            or lower_bound(k, n, confidence) > maximum)


@lru_cache(maxsize=65536)
def judge_class(outcome: str, k: int, n: int, maximum: float,
                confidence: float = 0.95) -> ClassJudgement:
    """Rules (see docs/results.md): ``fail`` when the one-sided lower bound is above the
    maximum; ``pass`` when the one-sided upper bound is below it, or, for a maximum of 0,
    when no event was seen in at least one boot (the statement then only claims the
    zero-failure bound, never a zero rate); otherwise ``undecided``."""
    _check(k, n, confidence)
    lo, up = lower_bound(k, n, confidence), upper_bound(k, n, confidence)
    c = f"{100 * confidence:g}% confidence"
    name = outcome.replace("_", "-")
    status: Status
    if n == 0:
        status, text = "undecided", f"{name}: no guest boots yet"
    elif lo > maximum:
        status = "fail"
        text = (f"{name} rate above {_pct(lo)} with {c} ({k}/{n}); "
                f"maximum {_pct(maximum)}")
    elif maximum <= 0 and k == 0:
        status = "pass"
        text = (f"{name}: 0/{n} boots; rate below {_pct(up)} with {c} "
                f"(maximum 0: no event seen)")
    elif up < maximum:
        status = "pass"
        text = f"{name} rate below {_pct(up)} with {c} ({k}/{n}); maximum {_pct(maximum)}"
    else:
        status = "undecided"
        text = (f"{name} {k}/{n}: rate between {_pct(lo)} and {_pct(up)} "
                f"({c}), maximum {_pct(maximum)}")
    more = boots_to_decide(k, n, maximum, confidence) if status == "undecided" else None
    if status == "undecided":
        text += (f"; about {more} more boots would decide it if the rate held"
                 if more is not None else "; more boots at this rate would not decide it")
    return ClassJudgement(outcome, k, n, maximum, confidence, status, lo, up, more, text)


def judge(counts: CellCounts, expect: Expectation) -> Judgement:
    classes = tuple(
        judge_class(o.value, counts.k(o), counts.n, maximum, expect.confidence)
        for o, maximum in ((Outcome.VCPU_OFFLINE, expect.vcpu_offline),
                           (Outcome.BOOT_FAILURE, expect.boot_failure))
        if maximum is not None
    )
    if not classes:
        return Judgement("not_judged", (), None, "no expectation")
    undecided = [c for c in classes if c.status == "undecided"]
    status: Status
    more: int | None = None
    if any(c.status == "fail" for c in classes):
        status = "fail"
        statement = "; ".join(c.statement for c in classes if c.status == "fail")
    elif not undecided:
        status = "pass"
        statement = "; ".join(c.statement for c in classes)
    else:
        status = "undecided"
        mores = [c.more_boots for c in undecided]
        more = None if any(m is None for m in mores) else max(m for m in mores if m is not None)
        statement = "; ".join(c.statement for c in undecided)
    return Judgement(status, classes, more, statement)


# --- comparisons ------------------------------------------------------------------------


def newcombe(k_a: int, n_a: int, k_b: int, n_b: int, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval (method 10, 1998) for p_a - p_b."""
    _check(k_a, n_a, confidence)
    _check(k_b, n_b, confidence)
    if n_a == 0 or n_b == 0:
        return Interval(-1.0, 1.0)
    pa, pb = k_a / n_a, k_b / n_b
    a, b = wilson(k_a, n_a, confidence), wilson(k_b, n_b, confidence)
    d = pa - pb
    low = d - math.sqrt((pa - a.low) ** 2 + (b.high - pb) ** 2)
    high = d + math.sqrt((a.high - pa) ** 2 + (pb - b.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))


@lru_cache(maxsize=4096)
def exact_test(k_a: int, n_a: int, k_b: int, n_b: int,
               alternative: Alternative = "greater") -> tuple[float, str]:
    """p-value of H0 p_a = p_b against ``alternative`` (p_a > p_b for "greater").
    Returns (p, method): Boschloo's exact test, or Fisher's for large tables."""
    _check(k_a, n_a)
    _check(k_b, n_b)
    if n_a == 0 or n_b == 0 or k_a + k_b == 0 or (k_a == n_a and k_b == n_b):
        return 1.0, "none"  # nothing to compare: no data or no variation
    table = [[k_a, k_b], [n_a - k_a, n_b - k_b]]  # columns are the two samples
    if n_a * n_b <= BOSCHLOO_MAX_TABLE:
        p = float(sps.boschloo_exact(table, alternative=alternative).pvalue)
        return min(1.0, max(0.0, p)), "boschloo"
    return float(sps.fisher_exact(table, alternative=alternative).pvalue), "fisher"


@dataclass(frozen=True)
class Comparison:
    """Group a against group b for one outcome class; ``difference`` is rate a - rate b."""

    label: str
    outcome: str
    a: str
    b: str
    k_a: int
    n_a: int
    k_b: int
    n_b: int
    difference: float | None
    interval: Interval  # Newcombe at `confidence`
    alternative: Alternative
    p_value: float
    method: str  # "boschloo", "fisher" or "none"
    p_adjusted: float  # Holm across the family (== p_value until adjusted)
    significant: bool  # p_adjusted < 1 - confidence
    confidence: float = 0.95


def compare(label: str, a: CellCounts, b: CellCounts, outcome: Outcome | str, *,
            alternative: Alternative = "greater", confidence: float = 0.95,
            a_name: str = "a", b_name: str = "b") -> Comparison:
    """One comparison (not yet adjusted: pass the family through ``adjust``)."""
    o = Outcome(outcome)
    ka, kb = a.k(o), b.k(o)
    p, method = exact_test(ka, a.n, kb, b.n, alternative)
    diff = ka / a.n - kb / b.n if a.n and b.n else None
    return Comparison(label, o.value, a_name, b_name, ka, a.n, kb, b.n, diff,
                      newcombe(ka, a.n, kb, b.n, confidence), alternative, p, method, p,
                      p < 1 - confidence, confidence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (R's p.adjust "holm")."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def adjust(comparisons: Sequence[Comparison]) -> tuple[Comparison, ...]:
    """Holm-adjust a family of comparisons and set ``significant`` from the adjusted p."""
    adj = holm([c.p_value for c in comparisons])
    return tuple(replace(c, p_adjusted=p, significant=p < 1 - c.confidence)
                 for c, p in zip(comparisons, adj, strict=True))


def cell_value(cell: Cell, key: str) -> Any:
    """A cell's value for an axis, a cell field or a host attribute (KeyError if none)."""
    if key in ("host", "guest", "vcpus", "memory_mib", "matrix"):
        return getattr(cell, key)
    if key == "reboot":
        return str(cell.reboot)
    for name, value in (*cell.params, *cell.host_attrs):
        if name == key:
            return value
    raise KeyError(key)


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y or (str(x).lower() == str(y).lower())
    return x == y or str(x) == str(y)


def compare_along(cells: Iterable[tuple[Cell, CellCounts]], axis: str, a: Any, b: Any, *,
                  by: Sequence[str] = (), outcomes: Sequence[Outcome | str] = JUDGED,
                  alternative: Alternative = "greater",
                  confidence: float = 0.95) -> tuple[Comparison, ...]:
    """Compare cells whose ``axis`` is ``a`` with those where it is ``b``, separately for
    each combination of the ``by`` keys (pooling the counts of the other cells), for each
    outcome class; the whole family is Holm-adjusted. Example: ``axis="numa_patch",
    a=False, b=True, by=("guest",)`` asks, per guest, whether hosts without the NUMA
    patch fail more often. Groups missing either side are left out."""
    groups: dict[tuple[Any, ...], dict[str, CellCounts]] = {}
    for cell, counts in cells:
        try:
            value = cell_value(cell, axis)
            key = tuple(cell_value(cell, k) for k in by)
        except KeyError:
            continue
        side = "a" if _same(value, a) else "b" if _same(value, b) else None
        if side is None:
            continue
        g = groups.setdefault(key, {})
        g[side] = g.get(side, CellCounts()) + counts
    family = []
    for key, sides in groups.items():
        if "a" not in sides or "b" not in sides:
            continue
        where = ", ".join(f"{k}={v}" for k, v in zip(by, key, strict=True))
        for o in outcomes:
            label = f"{Outcome(o).value}: {axis}={a} vs {axis}={b}" + (
                f" ({where})" if where else "")
            family.append(compare(label, sides["a"], sides["b"], o, alternative=alternative,
                                  confidence=confidence, a_name=f"{axis}={a}",
                                  b_name=f"{axis}={b}"))
    return adjust(family)


# --- sequential stopping ----------------------------------------------------------------

SprtDecision = Literal["accept_h0", "accept_h1", "continue"]


def sprt_decision(k: int, n: int, p0: float, p1: float, alpha: float = 0.05,
                  beta: float = 0.05) -> SprtDecision:
    """Wald's SPRT for a binomial rate after ``k`` events in ``n`` boots.

    H0: rate = ``p0`` (acceptable) against H1: rate = ``p1`` (``p1 > p0``); ``alpha`` is
    the chance of accepting H1 when H0 holds, ``beta`` of accepting H0 when H1 holds.
    Stop and accept when the log-likelihood ratio leaves (log(beta/(1-alpha)),
    log((1-beta)/alpha)). ``p0`` may be 0 (then any event accepts H1)."""
    _check(k, n)
    if not 0 <= p0 < p1 <= 1:
        raise ValueError(f"need 0 <= p0 < p1 <= 1, got p0={p0}, p1={p1}")
    if not (0 < alpha < 1 and 0 < beta < 1):
        raise ValueError("alpha and beta must be in (0, 1)")
    if k > 0 and p0 == 0:
        return "accept_h1"
    if n - k > 0 and p1 == 1:
        return "accept_h0"
    llr = 0.0
    if k:
        llr += k * math.log(p1 / p0)
    if n - k:
        llr += (n - k) * math.log((1 - p1) / (1 - p0))
    if llr >= math.log((1 - beta) / alpha):
        return "accept_h1"
    if llr <= math.log(beta / (1 - alpha)):
        return "accept_h0"
    return "continue"


def rates_of(counts: Mapping[str, CellCounts], outcome: Outcome | str,
             confidence: float = 0.95) -> dict[str, Rate]:
    """Convenience: the rate of one outcome class for every cell id."""
    return {cid: c.rate(outcome, confidence) for cid, c in counts.items()}
