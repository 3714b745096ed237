"""The matrix as pytest items: one ``CellItem`` per cell, run through the library's
runner (the same scheduler, boot loop, classifier and store as ``harness run``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.matrix import Matrix, load_matrix
from harness.model import Cell, Outcome
from harness.store.target import DbTarget

STATE_KEY = pytest.StashKey["PluginState"]()
UNDECIDED = "undecided: "


@dataclass
class PluginState:
    """What one pytest session (controller or worker) knows about its matrix run."""

    matrix_path: Path
    matrix: Matrix
    db: DbTarget  # a file or a postgresql:// URL
    reports_dir: Path
    boots: int | None = None
    time_scale: float | None = None
    formats: str = "html,junit,md,json"
    run_id: str = ""
    reports: dict[str, Path] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config, matrix_path: Path) -> PluginState:
        from harness.store import parse_target, resolve_db

        try:
            matrix = load_matrix(matrix_path)
        except HarnessError as exc:
            raise pytest.UsageError(f"--matrix: {exc}") from None
        boots = config.getoption("matrix_boots")
        if boots is not None and boots < 1:
            raise pytest.UsageError("--matrix-boots must be at least 1")
        reports_dir = Path(config.getoption("matrix_reports_dir"))
        db_opt = config.getoption("matrix_db")
        try:
            db = resolve_db(parse_target(db_opt) if db_opt else None, matrix.lab.name,
                            matrix.lab.spec.results, reports_dir)
        except HarnessError as exc:
            raise pytest.UsageError(f"--matrix-db: {exc}") from None
        return cls(matrix_path=matrix_path, matrix=matrix, db=db, reports_dir=reports_dir,
                   boots=boots, time_scale=config.getoption("matrix_time_scale"),
                   formats=config.getoption("matrix_reports"),
                   run_id=config.getoption("matrix_run_id") or "")

    def create_run(self) -> None:
        """Controller: create the run (or continue an existing id) before any worker."""
        from harness import __version__
        from harness.store import Store, make_run_id

        with Store(self.db) as store:
            if self.run_id and any(r.id == self.run_id for r in store.list_runs()):
                info = store.get_run(self.run_id)
                if info.matrix != self.matrix.name:
                    raise pytest.UsageError(f"--matrix-run-id {self.run_id}: that run is of "
                                            f"matrix {info.matrix!r}, not {self.matrix.name!r}")
                store.resume_run(self.run_id)
                return
            self.run_id = self.run_id or make_run_id(self.matrix.name)
            try:
                store.create_run(self.run_id, self.matrix.name, [],
                                 matrix_file=str(self.matrix.file),
                                 config={"harness": __version__, "runner": "pytest",
                                         "lab": self.matrix.lab.name, "boots": self.boots,
                                         "time_scale": self.time_scale},
                                 artifacts_dir=self.reports_dir / self.run_id)
            except HarnessError as exc:
                raise pytest.UsageError(str(exc)) from None

    def cells(self) -> list[Cell]:
        return list(self.matrix.cells)

    def run_cell(self, cell: Cell, boots: int | None = None) -> dict[str, Any]:
        """Boot every boot of ``cell`` (``boots`` in all, default the matrix's or
        --matrix-boots) into the session's run; returns counts, judgement, signatures."""
        from harness.runner import Runner, RunOptions
        from harness.stats import CellCounts, judge_cell, signature_counts
        from harness.store import Store

        runner = Runner(self.matrix, RunOptions(
            resume=self.run_id, join=True, only_cells=(cell.id,),
            boots=boots if boots is not None else self.boots,
            time_scale=self.time_scale, db=self.db, reports_dir=self.reports_dir,
            write_reports=False))
        summary = runner.run()
        counts = summary.counts.get(cell.id, CellCounts())
        with Store(self.db) as store:
            results = store.boots(self.run_id, cell.id)
        sigs = signature_counts(b.signatures for b in results
                                if b.outcome != Outcome.INFRA_ERROR)
        expect = next((c.expect for c in summary.cells if c.id == cell.id), cell.expect)
        stopped = cell.id in summary.decisions
        return {"counts": counts, "judgement": judge_cell(counts, expect, stopped),
                "signatures": sigs, "expect": expect, "status": summary.status,
                "set_aside": summary.set_aside, "stopped_early": stopped}

    def finish(self, *, interrupted: bool) -> None:
        """Controller, once per session: mark the run finished and write the reports."""
        from harness.report import write_reports
        from harness.store import Store

        with Store(self.db) as store:
            store.mark_finished(self.run_id, "interrupted" if interrupted else "finished")
            if not self.formats or not store.cells(self.run_id):
                return
            try:
                self.reports = write_reports(store, self.run_id, self.formats,
                                             out_dir=self.reports_dir / self.run_id)
            except HarnessError as exc:  # a report problem must not hide the test results
                self.error = str(exc)


class MatrixFile(pytest.File):
    """The matrix file as a collector of its cells."""

    def collect(self) -> list[CellItem]:
        state = self.config.stash[STATE_KEY]
        return [CellItem.from_parent(self, name=cell.id, cell=cell) for cell in state.cells()]


class CellFailed(Exception):
    """The cell broke its expectation; the message is the statistical statement."""


class CellItem(pytest.Item):
    def __init__(self, *, cell: Cell, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cell = cell
        self.add_marker(pytest.mark.xdist_group(name=cell.host))
        self.add_marker(pytest.mark.harness_cell(cell.id))
        for key in (cell.host, cell.guest, f"vcpu{cell.vcpus}"):
            self.keywords[key] = True

    def runtest(self) -> None:
        state: PluginState = self.config.stash[STATE_KEY]
        out = state.run_cell(self.cell)
        counts, j = out["counts"], out["judgement"]
        props = {"host": self.cell.host, "guest": self.cell.guest, "vcpus": self.cell.vcpus,
                 "boots": counts.boots, "ok": counts.ok, "vcpu_offline": counts.vcpu_offline,
                 "boot_failure": counts.boot_failure, "infra_error": counts.infra_error,
                 "verdict": j.status, "run_id": state.run_id}
        self.user_properties.extend(props.items())
        message = cell_statement(counts, out["expect"], j, out["signatures"],
                                 out.get("stopped_early", False))
        if out["set_aside"].get(self.cell.host):
            message += f"\nhost {self.cell.host} set aside: {out['set_aside'][self.cell.host]}"
        if j.status == "fail":
            raise CellFailed(message)
        if j.status == "undecided":
            pytest.xfail(UNDECIDED + message)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, CellFailed):
            return f"{self.cell.id}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"cell {self.cell.id}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x == 0 or x >= 0.1 else f"{100 * x:.1f}%"


def cell_statement(counts: Any, expect: Any, judgement: Any, signatures: Any,
                   stopped_early: bool = False) -> str:
    """``vCPU offline 12/50 = 24% [14%, 37%], expected <= 0%`` per judged class, the
    verdict's claim, and the signatures seen (a cell stopped early: its confidence
    sequence, as in every report)."""
    from harness.stats import rate

    lines = []
    for outcome, label, maximum in (("vcpu_offline", "vCPU offline", expect.vcpu_offline),
                                    ("boot_failure", "boot failure", expect.boot_failure)):
        k = counts.k(outcome)
        r = rate(k, counts.n, expect.confidence, sequential=stopped_early)
        value = "n/a" if r.value is None else _pct(r.value)
        exp = "not judged" if maximum is None else f"expected <= {_pct(maximum)}"
        lines.append(f"{label} {k}/{counts.n} = {value} [{_pct(r.low)}, {_pct(r.high)}], {exp}")
    if counts.infra_error:
        lines.append(f"infrastructure errors (not counted): {counts.infra_error}")
    lines.append(f"{judgement.status}: {judgement.statement}"
                 + (" (stopped early)" if stopped_early else ""))
    if signatures:
        lines.append("signatures: " + "; ".join(f"{s.title} x{s.count}" for s in signatures))
    return "\n".join(lines)


def undecided_status(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """Show undecided cells as their own outcome (U / UNDECIDED), not as xfail, and clean
    cells (no failure seen, no rate ruled out) as passed but spelled C / CLEAN."""
    reason = getattr(report, "wasxfail", None)
    if report.when == "call" and isinstance(reason, str) and reason.startswith(UNDECIDED):
        return "undecided", "U", "UNDECIDED"
    if (report.when == "call" and report.passed
            and ("verdict", "clean") in getattr(report, "user_properties", ())):
        return "passed", "C", "CLEAN"
    return None
