"""Sequential stopping: Wald's SPRT for a binomial rate (used by harness.adaptive)."""

from __future__ import annotations

import math
from typing import Literal

from harness.stats.rates import _check

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
