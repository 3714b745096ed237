"""Adaptive stopping per cell: stop booting a cell once Wald's SPRT has decided its rates
against the matrix expectation (optional per matrix: ``adaptive:``; fixed N is the default).

For each judged class (vCPU offline, boot failure) with maximum ``m``, H0 is rate = ``m``
and H1 is rate = ``m + INDIFFERENCE`` (at least 2 m): ``alpha`` bounds the chance of failing
a cell whose rate is at its maximum, ``beta`` of passing one that is ``INDIFFERENCE``
worse. A cell is decided when some class accepts H1 (it fails) or every class accepts H0
(it passes), after at least ``min_boots`` guest boots.

A rate read off a sequentially stopped cell is biased and its fixed-N interval does not
hold; ``confidence_sequence`` gives an interval that holds at every n simultaneously
(Robbins' beta-binomial mixture), so it stays valid whenever the cell stopped. Pure
functions plus one small thread-safe bookkeeper (``SprtStopper``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from harness.model import BootResult, Cell, Outcome
from harness.stats import CellCounts, sprt_decision

INDIFFERENCE = 0.05
Decision = Literal["pass", "fail"]


@dataclass(frozen=True)
class AdaptiveSettings:
    min_boots: int = 5
    alpha: float = 0.05
    beta: float = 0.05


def alternative(maximum: float) -> float:
    """The rate H1 puts against the maximum acceptable rate ``maximum``."""
    return min(0.999, max(maximum + INDIFFERENCE, 2 * maximum))


def cell_decision(counts: CellCounts, cell: Cell, settings: AdaptiveSettings
                  ) -> Decision | None:
    """The SPRT decision for one cell's counts, or None to keep booting."""
    if counts.n < settings.min_boots:
        return None
    judged = [(o, m) for o, m in ((Outcome.VCPU_OFFLINE, cell.expect.vcpu_offline),
                                  (Outcome.BOOT_FAILURE, cell.expect.boot_failure))
              if m is not None and m < 1]
    if not judged:
        return None
    verdicts = [sprt_decision(counts.k(o), counts.n, m, alternative(m), settings.alpha,
                              settings.beta) for o, m in judged]
    if "accept_h1" in verdicts:
        return "fail"
    if all(v == "accept_h0" for v in verdicts):
        return "pass"
    return None


class SprtStopper:
    """Counts each cell's outcomes as boots are recorded and says when it is decided."""

    def __init__(self, cells: Iterable[Cell], settings: AdaptiveSettings,
                 prior: Mapping[str, CellCounts] | None = None) -> None:
        self.settings = settings
        self._cells = {c.id: c for c in cells}
        self._counts: dict[str, CellCounts] = dict(prior or {})
        self._decisions: dict[str, Decision] = {}
        self._lock = threading.Lock()
        for cid in self._counts:
            self._decide(cid)

    def _decide(self, cell_id: str) -> None:
        cell = self._cells.get(cell_id)
        if cell is None or cell_id in self._decisions:
            return
        d = cell_decision(self._counts.get(cell_id, CellCounts()), cell, self.settings)
        if d is not None:
            self._decisions[cell_id] = d

    def observe(self, result: BootResult) -> None:
        one = {result.outcome.value: 1}
        with self._lock:
            c = self._counts.get(result.cell_id, CellCounts())
            self._counts[result.cell_id] = c + CellCounts(**one)
            self._decide(result.cell_id)

    def decided(self, cell_id: str) -> bool:
        return cell_id in self._decisions

    def decision(self, cell_id: str) -> Decision | None:
        return self._decisions.get(cell_id)


def confidence_sequence(k: int, n: int, confidence: float = 0.95, a: float = 0.5,
                        b: float = 0.5) -> tuple[float, float]:
    """An anytime-valid interval for a Bernoulli rate after ``k`` events in ``n`` trials:
    with probability ``confidence`` it contains the true rate at every n at once, so
    it is valid at a data-dependent stopping time. The set of rates p whose
    beta(a, b)-mixture likelihood ratio stays below 1/(1 - confidence)."""
    from scipy.optimize import brentq  # SciPy costs 1 s to import: only when needed
    from scipy.special import betaln

    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    bound = math.log(1 / (1 - confidence))
    log_mix = betaln(a + k, b + n - k) - betaln(a, b)

    def excess(p: float) -> float:  # log mixture ratio at p minus the bound
        lp = (k * math.log(p) if k else 0.0) + ((n - k) * math.log1p(-p) if n - k else 0.0)
        return log_mix - lp - bound

    mle = min(max(k / n, 1e-12), 1 - 1e-12)
    eps = 1e-12
    low = 0.0 if excess(eps) <= 0 else float(brentq(excess, eps, mle))
    high = 1.0 if excess(1 - eps) <= 0 else float(brentq(excess, mle, 1 - eps))
    return (low, high)
