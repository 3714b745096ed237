"""Adaptive stopping per cell: stop booting a cell once its verdict, read off an
anytime-valid confidence sequence, is decided (optional per matrix: ``adaptive:``; fixed N
is the default).

A cell is decided when, for some judged class, the confidence sequence of its rate lies
wholly above the maximum (``fail``), or when for every judged class it lies wholly below
the maximum (``pass``; for a maximum of 0 below the matrix's ``rule_out``), after at least
``min_boots`` guest boots. The sequence holds at every n at once, so the verdict, and the
interval every report shows for the cell, stay valid at the data-dependent stop (a fixed-n
interval read after an early stop covers only 83-85%). A class with maximum 0 and no
``rule_out`` can only be decided as a failure: "no failure seen" is never a pass.

Each decision is kept with the guest boot at which it was made and the interval used, and
the runner records it in the store (``Store.record_decision``). Pure functions plus one
small thread-safe bookkeeper (``SequentialStopper``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from harness.model import BootResult, Cell
from harness.stats import CellCounts
from harness.stats.sequential import CS_METHOD, confidence_sequence, judge_sequential
from harness.stats.verdict import judged

Decision = Literal["pass", "fail"]

__all__ = ["AdaptiveSettings", "CellDecision", "Decision", "SequentialStopper",
           "SprtStopper", "cell_decision", "confidence_sequence", "decide"]


@dataclass(frozen=True)
class AdaptiveSettings:
    min_boots: int = 5
    alpha: float = 0.05  # kept for old matrix files: the sequence uses the cell's
    beta: float = 0.05  # confidence (alpha and beta were the SPRT's error rates)


@dataclass(frozen=True)
class CellDecision:
    """An early stop: the verdict, the guest boot count at which it was made, and the
    interval it was made on (the worst class's: the failing one, else the widest)."""

    cell_id: str
    decision: Decision
    at_boot: int  # guest boots of the cell when decided
    outcome: str  # the class whose interval is given
    low: float
    high: float
    confidence: float
    method: str = CS_METHOD


def decide(counts: CellCounts, cell: Cell, settings: AdaptiveSettings
           ) -> CellDecision | None:
    """The decision for one cell's counts, or None to keep booting (pure)."""
    if counts.n < settings.min_boots or not judged(cell.expect):
        return None
    j = judge_sequential(counts, cell.expect)
    if j.status not in ("pass", "fail"):
        return None
    cls = [c for c in j.classes if c.status == j.status]
    pick = max(cls, key=lambda c: c.upper - c.lower)
    d: Decision = "pass" if j.status == "pass" else "fail"
    return CellDecision(cell.id, d, counts.n, pick.outcome, pick.lower, pick.upper,
                        cell.expect.confidence)


def cell_decision(counts: CellCounts, cell: Cell, settings: AdaptiveSettings
                  ) -> Decision | None:
    """``decide``'s verdict alone."""
    d = decide(counts, cell, settings)
    return d.decision if d else None


class SequentialStopper:
    """Counts each cell's outcomes as boots are recorded and says when it is decided."""

    def __init__(self, cells: Iterable[Cell], settings: AdaptiveSettings,
                 prior: Mapping[str, CellCounts] | None = None) -> None:
        self.settings = settings
        self._cells = {c.id: c for c in cells}
        self._counts: dict[str, CellCounts] = dict(prior or {})
        self._decisions: dict[str, CellDecision] = {}
        self._lock = threading.Lock()
        for cid in self._counts:
            self._decide(cid)

    def _decide(self, cell_id: str) -> None:
        cell = self._cells.get(cell_id)
        if cell is None or cell_id in self._decisions:
            return
        d = decide(self._counts.get(cell_id, CellCounts()), cell, self.settings)
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
        d = self._decisions.get(cell_id)
        return d.decision if d else None

    def record(self, cell_id: str) -> CellDecision | None:
        """The decision with the boot it was made at and its interval."""
        return self._decisions.get(cell_id)


SprtStopper = SequentialStopper  # the old name (the stop is no longer Wald's SPRT)
