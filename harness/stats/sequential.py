"""Sequential statistics: an anytime-valid confidence sequence for a binomial rate and the
verdict read off it (what ``harness.adaptive`` stops on), and Wald's SPRT (kept for
comparison in the adaptive benchmark)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

from harness.model import Expectation
from harness.stats.rates import CellCounts, Interval, _check
from harness.stats.verdict import (
    ClassJudgement,
    Judgement,
    Status,
    _pct,
    clean_text,
    combine,
    judged,
)

CS_METHOD = "confidence sequence"

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


@lru_cache(maxsize=65536)
def confidence_sequence(k: int, n: int, confidence: float = 0.95, a: float = 0.5,
                        b: float = 0.5) -> Interval:
    """An anytime-valid interval for a Bernoulli rate after ``k`` events in ``n`` trials:
    with probability ``confidence`` it contains the true rate at every n at once, so it is
    valid at a data-dependent stopping time (Robbins' beta(a, b) mixture: the rates p
    whose mixture likelihood ratio stays below 1/(1 - confidence))."""
    from scipy.optimize import brentq  # SciPy costs 1 s to import: only when needed
    from scipy.special import betaln

    _check(k, n, confidence)
    if n == 0:
        return Interval(0.0, 1.0)
    bound = math.log(1 / (1 - confidence))
    log_mix = betaln(a + k, b + n - k) - betaln(a, b)

    def excess(p: float) -> float:  # log mixture ratio at p minus the bound
        lp = (k * math.log(p) if k else 0.0) + ((n - k) * math.log1p(-p) if n - k else 0.0)
        return float(log_mix - lp - bound)

    mle = min(max(k / n, 1e-12), 1 - 1e-12)
    eps = 1e-12
    low = 0.0 if excess(eps) <= 0 else float(brentq(excess, eps, mle, xtol=1e-14))
    high = 1.0 if excess(1 - eps) <= 0 else float(brentq(excess, mle, 1 - eps, xtol=1e-14))
    return Interval(low, high)


@lru_cache(maxsize=65536)
def judge_class_sequential(outcome: str, k: int, n: int, maximum: float,
                           confidence: float = 0.95,
                           rule_out: float | None = None) -> ClassJudgement:
    """One class judged on the confidence sequence (valid however the boots were stopped):
    ``fail`` when it lies wholly above the maximum, ``pass`` when wholly below it (for a
    maximum of 0: below ``rule_out``), ``clean`` for a maximum of 0 with no event and no
    rate to rule out, else ``undecided``. ``lower``/``upper`` are the sequence's ends."""
    _check(k, n, confidence)
    ci = confidence_sequence(k, n, confidence)
    c = f"{100 * confidence:g}% confidence sequence"
    name = outcome.replace("_", "-")
    status: Status
    if n == 0:
        status, text = "undecided", f"{name}: no guest boots yet"
    elif ci.low > maximum:
        status = "fail"
        text = f"{name} rate above {_pct(ci.low)} ({c}, {k}/{n}); maximum {_pct(maximum)}"
    elif maximum <= 0 and k == 0:
        text = clean_text(name, n, ci.high, confidence) + " (confidence sequence)"
        if rule_out is None:
            status = "clean"
        elif ci.high < rule_out:
            status, text = "pass", text + f"; rules out {_pct(rule_out)}"
        else:
            status = "undecided"
    elif ci.high < maximum:
        status = "pass"
        text = f"{name} rate below {_pct(ci.high)} ({c}, {k}/{n}); maximum {_pct(maximum)}"
    else:
        status = "undecided"
        text = (f"{name} {k}/{n}: rate between {_pct(ci.low)} and {_pct(ci.high)} ({c}), "
                f"maximum {_pct(maximum)}")
    return ClassJudgement(outcome, k, n, maximum, confidence, status, ci.low, ci.high, None,
                          text, method=CS_METHOD)


def judge_sequential(counts: CellCounts, expect: Expectation) -> Judgement:
    """The verdict of a cell whose boots may have been stopped by looking at them."""
    return combine(tuple(
        judge_class_sequential(o.value, counts.k(o), counts.n, maximum,
                               expect.confidence, expect.rule_out)
        for o, maximum in judged(expect)))


def judge_cell(counts: CellCounts, expect: Expectation, stopped_early: bool = False
               ) -> Judgement:
    """The one verdict every report shows: fixed-n (``judge``) for a cell booted to its
    planned count, the confidence sequence's for a cell adaptive stopping cut short."""
    from harness.stats.verdict import judge

    return judge_sequential(counts, expect) if stopped_early else judge(counts, expect)
