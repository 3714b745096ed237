"""Every run with its completeness: complete or not, and why (interrupted, hosts set
aside, cells unfinished), boots, infrastructure errors per host and verdict counts.

``run_status`` is pure (records in, record out); ``load_status(es)`` read the store."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.model import Cell
from harness.stats import CellCounts, judge_cell

if TYPE_CHECKING:
    from harness.store import InfraEvent, RunInfo, Store

VERDICTS = ("fail", "undecided", "pass", "clean", "not_judged")


@dataclass(frozen=True)
class RunStatus:
    """One run, as ``harness runs`` lists it and the baseline rule reads it."""

    id: str
    matrix: str
    started: float
    finished: float | None
    status: str  # as recorded: finished, interrupted, incomplete, running
    complete: bool
    reasons: tuple[str, ...]  # why not complete ("" when complete)
    cells: int
    planned: int  # boots the run's cells ask for
    boots: int  # recorded boots, infrastructure errors included
    guest_boots: int  # the rates' denominator
    verdicts: Mapping[str, int]  # verdict -> cells
    hosts_set_aside: tuple[tuple[str, str], ...] = ()  # (host, why)
    unfinished: tuple[tuple[str, int, int], ...] = ()  # (cell, guest boots, planned)
    infra_by_host: tuple[tuple[str, int], ...] = ()  # infrastructure errors per host
    adaptive: bool = False
    guest_boots_by_cell: Mapping[str, int] = field(default_factory=dict)

    @property
    def why(self) -> str:
        return "complete" if self.complete else "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        from harness.report.build import iso

        return {
            "id": self.id, "matrix": self.matrix, "started": iso(self.started),
            "finished": iso(self.finished), "status": self.status,
            "complete": self.complete, "why": list(self.reasons), "cells": self.cells,
            "planned": self.planned, "boots": self.boots, "guest_boots": self.guest_boots,
            "verdicts": dict(self.verdicts),
            "hosts_set_aside": [{"host": h, "why": w} for h, w in self.hosts_set_aside],
            "unfinished_cells": [{"cell": c, "guest_boots": n, "planned": p}
                                 for c, n, p in self.unfinished],
            "infra_errors_by_host": dict(self.infra_by_host), "adaptive": self.adaptive,
        }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def run_status(info: RunInfo, cells: Sequence[Cell], counts: Mapping[str, CellCounts],
               hosts: Mapping[str, tuple[str, str]] = {},
               infra: Sequence[InfraEvent] = (),
               stopped: Collection[str] = ()) -> RunStatus:
    """Is the run complete, and if not why: pure over what the store holds. ``stopped``:
    cells adaptive stopping decided (judged on their confidence sequence, and done)."""
    adaptive = bool(info.config.get("adaptive"))
    reasons: list[str] = []
    if info.status == "interrupted":
        reasons.append("interrupted")
    elif info.status == "running":
        reasons.append("still running, or its controller died (status running)")
    elif info.status not in ("finished", "incomplete"):
        reasons.append(f"status {info.status}")
    aside = tuple((h, why) for h, (state, why) in sorted(hosts.items())
                  if state == "set_aside")
    for h, why in aside:
        reasons.append(f"host {h} set aside: {why}" if why else f"host {h} set aside")
    unfinished = []
    verdicts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
    n_by_cell: dict[str, int] = {}
    for c in cells:
        cc = counts.get(c.id, CellCounts())
        n_by_cell[c.id] = cc.n
        v = judge_cell(cc, c.expect, c.id in stopped).status
        verdicts[v] = verdicts.get(v, 0) + 1
        if cc.n < c.boots and c.id not in stopped:
            unfinished.append((c.id, cc.n, c.boots))
    if unfinished and not (adaptive and info.status == "finished" and not aside):
        unmeasured = sum(1 for _, n, _ in unfinished if n == 0)
        text = f"{_plural(len(unfinished), 'cell')} of {len(cells)} unfinished"
        if unmeasured:
            text += f" ({unmeasured} with no guest boot)"
        reasons.append(text)
    elif info.status == "incomplete" and not reasons:
        reasons.append("incomplete")
    host_of = {c.id: c.host for c in cells}
    by_host: dict[str, int] = {}
    for e in infra:
        h = host_of.get(e.cell_id, "?")
        by_host[h] = by_host.get(h, 0) + 1
    every = [counts.get(c.id, CellCounts()) for c in cells]
    return RunStatus(
        id=info.id, matrix=info.matrix, started=info.started, finished=info.finished,
        status=info.status, complete=not reasons, reasons=tuple(reasons), cells=len(cells),
        planned=sum(c.boots for c in cells), boots=sum(x.boots for x in every),
        guest_boots=sum(x.n for x in every), verdicts=verdicts, hosts_set_aside=aside,
        unfinished=tuple(unfinished), infra_by_host=tuple(sorted(by_host.items())),
        adaptive=adaptive, guest_boots_by_cell=n_by_cell)


def load_status(store: Store, run_id: str) -> RunStatus:
    info = store.get_run(run_id)
    return run_status(info, store.cells(run_id), store.counts(run_id),
                      store.host_states(run_id), store.infra_events(run_id),
                      set(store.decisions(run_id)))


def load_statuses(store: Store, matrix: str | None = None, *,
                  lab: str | None = None) -> list[RunStatus]:
    """Every run (of ``matrix``, of ``lab``), oldest first."""
    return [load_status(store, r.id) for r in store.list_runs(matrix, lab=lab)]
