"""Runs over nights: which runs are complete and why not (``runs``), which earlier run a
report compares with (``baseline``), what is new in each cell (``regress``), and each
cell's history with its first bad night (``nights``, ``dashboard``).

The decisions are pure functions over small frozen records; the store is read through a
few narrow functions (``load_statuses``, ``find_baseline``, ``load_history``)."""

from harness.history.baseline import BaselineChoice, choose_baseline, find_baseline
from harness.history.regress import (
    CellRegression,
    CellSnapshot,
    Regressions,
    SignatureTest,
    Test,
    regressions,
    snapshots,
)
from harness.history.runs import RunStatus, load_status, load_statuses, run_status

__all__ = [
    "BaselineChoice",
    "CellRegression",
    "CellSnapshot",
    "Regressions",
    "RunStatus",
    "SignatureTest",
    "Test",
    "choose_baseline",
    "find_baseline",
    "load_status",
    "load_statuses",
    "regressions",
    "run_status",
    "snapshots",
]
