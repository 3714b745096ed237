"""What a run tells its caller while it goes (progress events), and what worker processes
send their controller (typed messages, pickled one by one): the runner and the workers
both import this module, never each other's internals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.adaptive import Decision
from harness.model import BootResult, Outcome

# --- progress events (called from slot threads; keep handlers quick) -------------------


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    matrix: str
    total: int  # boots this run aims at (already recorded ones included)
    done: int  # boots already recorded (resume)
    slots: dict[str, int]
    db: Path | str  # a file or a postgresql:// URL (harness.store.target.DbTarget)
    resumed: bool


@dataclass(frozen=True)
class BootDone:
    result: BootResult


@dataclass(frozen=True)
class HostChanged:
    host: str
    state: str  # "running", "done", "stopped", "set aside: <why>"


@dataclass(frozen=True)
class CellDecided:
    cell_id: str
    decision: Decision
    skipped: int  # boots of the cell that will not be run


Event = RunStarted | BootDone | HostChanged | CellDecided


# --- worker <-> controller messages ------------------------------------------------------


@dataclass(frozen=True)
class WorkerStart:
    """Controller -> worker, once on its stdin: what to boot."""

    matrix_file: str
    options: Any  # RunOptions with worker=True, only_cells = its hosts' cells
    number: int
    parent: int  # the controller's pid (the worker dies with it)


@dataclass(frozen=True)
class WorkerBoot:
    cell_id: str
    index: int
    outcome: Outcome
    host: str

    def event(self, run_id: str) -> BootDone:
        return BootDone(BootResult(run_id=run_id, cell_id=self.cell_id, index=self.index,
                                   outcome=self.outcome, host=self.host))


@dataclass(frozen=True)
class WorkerHost:
    host: str
    state: str


@dataclass(frozen=True)
class WorkerDecided:
    cell_id: str
    decision: Decision


@dataclass(frozen=True)
class WorkerDone:
    number: int
    set_aside: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    skipped: int = 0
    interrupted: bool = False
    utilization: float = 0.0


@dataclass(frozen=True)
class WorkerError:
    number: int
    message: str


@dataclass(frozen=True)
class WorkerExit:
    """Not sent by a worker: the relay's note that its output ended."""

    number: int


WorkerMessage = WorkerBoot | WorkerHost | WorkerDecided | WorkerDone | WorkerError | WorkerExit
