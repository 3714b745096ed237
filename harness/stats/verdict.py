"""A cell's verdict against its expectation (rules: docs/results.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from harness.model import Expectation, Outcome
from harness.stats.rates import CellCounts, _check, lower_bound, upper_bound

Status = Literal["pass", "clean", "fail", "undecided", "not_judged"]
SUCCESS: frozenset[str] = frozenset({"pass", "clean", "not_judged"})  # exit status 0
MAX_BOOTS_TO_DECIDE = 10_000_000


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
    method: str = "clopper-pearson"  # the bounds: one-sided Clopper-Pearson, or the
    # two ends of a confidence sequence (cells stopped early, harness.stats.sequential)


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


def clean_text(name: str, n: int, upper: float, confidence: float) -> str:
    """What ``n`` clean boots support, and nothing more."""
    return (f"{name}: no failure in {n} boots (rate < {_pct(upper)} at "
            f"{100 * confidence:g}%)")


@lru_cache(maxsize=65536)
def judge_class(outcome: str, k: int, n: int, maximum: float, confidence: float = 0.95,
                rule_out: float | None = None) -> ClassJudgement:
    """Rules (see docs/results.md): ``fail`` when the one-sided lower bound is above the
    maximum; ``pass`` when the one-sided upper bound is below it. A maximum of 0 can never
    be shown by data: with no event the class is ``clean`` ("no failure in n boots (rate <
    X% at 95%)"), or ``pass`` when the matrix names a rate to ``rule_out`` and the clean
    boots' upper bound is below it (else ``undecided`` with the boots still needed);
    otherwise ``undecided``."""
    _check(k, n, confidence)
    lo, up = lower_bound(k, n, confidence), upper_bound(k, n, confidence)
    c = f"{100 * confidence:g}% confidence"
    name = outcome.replace("_", "-")
    status: Status
    more: int | None = None
    if n == 0:
        status, text = "undecided", f"{name}: no guest boots yet"
        more = boots_to_decide(k, n, maximum if maximum > 0 else (rule_out or 0.0),
                               confidence)
    elif lo > maximum:
        status = "fail"
        text = (f"{name} rate above {_pct(lo)} with {c} ({k}/{n}); "
                f"maximum {_pct(maximum)}")
    elif maximum <= 0 and k == 0:
        text = clean_text(name, n, up, confidence)
        if rule_out is None:
            status = "clean"
        elif up < rule_out:
            status = "pass"
            text += f"; rules out {_pct(rule_out)}"
        else:
            status = "undecided"
            more = _zero_failure_boots(rule_out, confidence) - n
            text += (f"; about {more} more clean boots would rule out {_pct(rule_out)}")
    elif up < maximum:
        status = "pass"
        text = f"{name} rate below {_pct(up)} with {c} ({k}/{n}); maximum {_pct(maximum)}"
    else:
        status = "undecided"
        more = boots_to_decide(k, n, maximum, confidence)
        text = (f"{name} {k}/{n}: rate between {_pct(lo)} and {_pct(up)} "
                f"({c}), maximum {_pct(maximum)}")
        text += (f"; about {more} more boots would decide it if the rate held"
                 if more is not None else "; more boots at this rate would not decide it")
    return ClassJudgement(outcome, k, n, maximum, confidence, status, lo, up, more, text)


def combine(classes: tuple[ClassJudgement, ...]) -> Judgement:
    """A cell's verdict from its classes: ``fail`` if any fails, ``undecided`` if any is
    undecided, ``pass`` if all pass, ``clean`` otherwise (some class clean, none failed)."""
    if not classes:
        return Judgement("not_judged", (), None, "no expectation")
    undecided = [c for c in classes if c.status == "undecided"]
    status: Status
    more: int | None = None
    if any(c.status == "fail" for c in classes):
        status = "fail"
        statement = "; ".join(c.statement for c in classes if c.status == "fail")
    elif undecided:
        status = "undecided"
        mores = [c.more_boots for c in undecided]
        more = None if any(m is None for m in mores) else max(m for m in mores if m is not None)
        statement = "; ".join(c.statement for c in undecided)
    else:
        status = "pass" if all(c.status == "pass" for c in classes) else "clean"
        statement = "; ".join(c.statement for c in classes)
    return Judgement(status, classes, more, statement)


def judged(expect: Expectation) -> tuple[tuple[Outcome, float], ...]:
    """The classes an expectation judges, with their maxima."""
    return tuple((o, m) for o, m in ((Outcome.VCPU_OFFLINE, expect.vcpu_offline),
                                     (Outcome.BOOT_FAILURE, expect.boot_failure))
                 if m is not None)


def judge(counts: CellCounts, expect: Expectation) -> Judgement:
    """The fixed-n verdict (the cell's boots were not stopped by looking at them)."""
    return combine(tuple(
        judge_class(o.value, counts.k(o), counts.n, maximum, expect.confidence,
                    expect.rule_out)
        for o, maximum in judged(expect)))
