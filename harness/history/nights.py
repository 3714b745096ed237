"""A matrix's history over nights: each cell's rate, interval and verdict per night, its
first bad night (``harness.stats.changepoint``, Holm across cells), links to each night's
report and to the failing boots' console and dmesg; and each night's completeness and
new regressions against its baseline. ``load_history`` reads the store; ``history``
is pure over the per-night records."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import stats
from harness.history.baseline import find_baseline
from harness.history.regress import regressions, snapshots
from harness.history.runs import RunStatus, load_status
from harness.stats.changepoint import first_bad

if TYPE_CHECKING:
    from harness.store import RunData, Store

MAX_BOOT_LINKS = 3  # failing boots linked per cell and night
LINKED = ("console", "dmesg")


@dataclass(frozen=True)
class BootLink:
    index: int
    outcome: str
    links: tuple[tuple[str, str], ...]  # (artifact name, href relative to the dashboard)


@dataclass(frozen=True)
class NightCell:
    """One cell on one night: guest failures (vCPU offline + boot failure) of guest boots."""

    k: int
    n: int
    value: float | None
    low: float
    high: float
    verdict: str
    infra: int = 0
    vcpu_offline: int = 0
    boot_failure: int = 0
    boots: tuple[BootLink, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "n": self.n, "value": self.value, "low": self.low,
                "high": self.high, "verdict": self.verdict, "infra_error": self.infra,
                "vcpu_offline": self.vcpu_offline, "boot_failure": self.boot_failure,
                "failing_boots": [{"index": b.index, "outcome": b.outcome,
                                   "links": dict(b.links)} for b in self.boots]}


@dataclass(frozen=True)
class Night:
    run_id: str
    started: float
    status: RunStatus
    report: str | None  # href of the night's report.html, when it exists
    baseline: str | None  # the run it was compared with
    baseline_reason: str
    new_regressions: tuple[str, ...] = ()  # cell ids
    recoveries: tuple[str, ...] = ()
    still_failing: tuple[str, ...] = ()


@dataclass(frozen=True)
class CellHistory:
    cell_id: str
    nights: tuple[NightCell | None, ...]  # None: the cell was not in that night's run
    first_bad: int | None  # index into the nights (after Holm across cells)
    p_value: float
    p_adjusted: float
    confidence: float
    before: float | None
    after: float | None

    @property
    def first_bad_night(self) -> int | None:
        return self.first_bad


@dataclass(frozen=True)
class History:
    matrix: str
    nights: tuple[Night, ...]
    cells: tuple[CellHistory, ...]
    alpha: float = 0.05

    def first_bad_run(self, cell: CellHistory) -> str | None:
        return None if cell.first_bad is None else self.nights[cell.first_bad].run_id

    def as_dict(self) -> dict[str, Any]:
        from harness.report.build import iso

        return {
            "matrix": self.matrix, "alpha": self.alpha,
            "nights": [{"run": n.run_id, "started": iso(n.started), "status": n.status.status,
                        "complete": n.status.complete, "why": list(n.status.reasons),
                        "hosts_set_aside": [{"host": h, "why": w}
                                            for h, w in n.status.hosts_set_aside],
                        "infra_errors_by_host": dict(n.status.infra_by_host),
                        "report": n.report, "baseline": n.baseline,
                        "baseline_reason": n.baseline_reason,
                        "new_regressions": list(n.new_regressions),
                        "recoveries": list(n.recoveries),
                        "still_failing": list(n.still_failing)} for n in self.nights],
            "cells": [{"id": c.cell_id,
                       "first_bad": None if c.first_bad is None else {
                           "night": c.first_bad, "run": self.nights[c.first_bad].run_id,
                           "confidence": c.confidence, "p_value": c.p_value,
                           "p_adjusted": c.p_adjusted, "before": c.before,
                           "after": c.after},
                       "nights": [None if x is None else x.as_dict() for x in c.nights]}
                      for c in self.cells],
        }


def history(matrix: str, nights: Sequence[Night],
            per_cell: Sequence[tuple[str, Sequence[NightCell | None]]],
            alpha: float = 0.05) -> History:
    """First bad nights, Holm-adjusted across the cells (pure)."""
    points = []
    for _, seq in per_cell:
        ks = [0 if x is None else x.k for x in seq]
        ns = [0 if x is None else x.n for x in seq]
        points.append(first_bad(ks, ns))
    adj = stats.holm([p.p_value for p in points])
    cells = []
    for (cid, seq), cp, pa in zip(per_cell, points, adj, strict=True):
        bad = cp.index if cp.index is not None and pa < alpha else None
        cells.append(CellHistory(cid, tuple(seq), bad, cp.p_value, pa,
                                 cp.confidence if bad is not None else 0.0, cp.before,
                                 cp.after))
    return History(matrix, tuple(nights), tuple(cells), alpha)


# --- reading the store ------------------------------------------------------------------


def _night_cells(data: RunData, href: Any) -> dict[str, NightCell]:
    out = {}
    for cd in data.cells:
        c = cd.counts
        k = c.vcpu_offline + c.boot_failure
        r = stats.rate(k, c.n, cd.cell.expect.confidence)
        links: list[BootLink] = []
        for b in cd.boots:
            if str(b.outcome) in ("vcpu_offline", "boot_failure") and len(links) < MAX_BOOT_LINKS:
                arts = tuple((name, h) for name, rel in b.artifacts
                             if any(x in name.lower() for x in LINKED)
                             and (h := href(rel)) is not None)
                links.append(BootLink(b.index, str(b.outcome), arts))
        out[cd.cell.id] = NightCell(k, c.n, r.value, r.low, r.high, cd.judgement.status,
                                    c.infra_error, c.vcpu_offline, c.boot_failure,
                                    tuple(links))
    return out


def load_history(store: Store, matrix: str, nights: int = 14, *,
                 out_dir: Path | None = None, alpha: float = 0.05,
                 lab: str | None = None) -> History:
    """The last ``nights`` runs of ``matrix`` (every run, complete or not; of ``lab`` when
    given: one database may hold several labs' runs); links are relative to ``out_dir``
    (the dashboard's folder) and only to files that exist."""
    from harness.report.write import artifacts_root

    base = (out_dir or store.folder).resolve()
    runs = store.list_runs(matrix, lab=lab)[-nights:] if nights > 0 else []
    night_list: list[Night] = []
    per_night: list[dict[str, NightCell]] = []
    order: dict[str, None] = {}
    loaded: dict[str, RunData] = {}

    def load(rid: str) -> RunData:
        if rid not in loaded:
            loaded[rid] = store.load_run(rid, with_findings=False)
        return loaded[rid]

    for info in runs:
        data = load(info.id)
        root = artifacts_root(store, data)

        def href(rel: str, root: Path | None = root) -> str | None:
            if root is None or not (root / rel).is_file():
                return None
            return Path(os.path.relpath(root / rel, base)).as_posix()

        per_night.append(_night_cells(data, href))
        for cd in data.cells:
            order.setdefault(cd.cell.id)
        choice = find_baseline(store, info.id)
        regs = None
        if choice.run_id is not None:
            before = load(choice.run_id)
            regs = regressions(snapshots(before), snapshots(data), run_id=info.id,
                               baseline_id=choice.run_id, matrix=matrix, alpha=alpha)
        night_list.append(Night(
            info.id, info.started, load_status(store, info.id), href("report.html"),
            choice.run_id, choice.reason,
            tuple(c.cell_id for c in regs.new_regressions) if regs else (),
            tuple(c.cell_id for c in regs.recoveries) if regs else (),
            tuple(c.cell_id for c in regs.still_failing) if regs else ()))
    per_cell = [(cid, [n.get(cid) for n in per_night]) for cid in order]
    return history(matrix, night_list, per_cell, alpha)
