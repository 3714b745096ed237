"""Several worker processes for one run (``harness run --workers N``).

The controller (``Runner`` with ``workers > 1``) creates or resumes the run, splits the
hosts among the workers (each host in one worker, so a host's slot limit, its health and
each cell's adaptive stop stay in one place), starts one process per group
(``python -m harness.worker_main``) and relays their progress: typed messages
(``harness.events``), never the runner's internals (no import cycle). Each worker is a
``Runner`` in ``worker`` mode on the same run: it boots its hosts' cells and records into
the same database (the store is safe for several processes). Python threads share one
CPU; processes use all of them.

A worker dies with its controller (``PR_SET_PDEATHSIG``): a controller killed with -9
leaves no orphan recording behind it, and ``--resume`` continues as usual. SIGTERM to the
controller (or its ``stop()``) stops the workers cleanly.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.adaptive import Decision
from harness.events import (
    CellDecided,
    HostChanged,
    WorkerBoot,
    WorkerDecided,
    WorkerDone,
    WorkerError,
    WorkerExit,
    WorkerHost,
    WorkerMessage,
    WorkerStart,
)


def split_hosts(todo: Mapping[str, int], workers: int,
                together: Mapping[str, str] | None = None) -> list[list[str]]:
    """Hosts in ``workers`` groups of about equal boots to do (largest first, each to the
    least loaded group); empty groups are dropped. Hosts with the same ``together`` key
    stay in one group (libvirt's ``qemu:///embed`` root belongs to one process). Pure."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    units: dict[str, list[str]] = {}
    for host in todo:
        units.setdefault((together or {}).get(host, "\0" + host), []).append(host)
    weight = {k: sum(todo[h] for h in hs) for k, hs in units.items()}
    groups: list[list[str]] = [[] for _ in range(min(workers, len(units)))]
    load = [0] * len(groups)
    for key in sorted(units, key=lambda k: (-weight[k], min(units[k]))):
        i = load.index(min(load))
        groups[i] += units[key]
        load[i] += weight[key]
    return [sorted(g) for g in groups if g]


@dataclass
class WorkerResults:
    set_aside: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    skipped: int = 0
    interrupted: bool = False
    utilization: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)




class WorkerPool:
    def __init__(self, matrix_file: Path, options: Any, groups: list[list[str]],
                 cells_by_host: Mapping[str, list[str]], run_id: str,
                 emit: Callable[[Any], None]) -> None:
        self._matrix_file = str(Path(matrix_file).resolve())
        self._options = options
        self._groups = groups
        self._cells_by_host = cells_by_host
        self._queue: queue.Queue[WorkerMessage] = queue.Queue()
        self._emit = emit
        self._run_id = run_id
        self._procs: list[subprocess.Popen[bytes]] = []
        self.results = WorkerResults()
        self._stopping = False
        self._lock = threading.Lock()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self.results.interrupted = True
            for p in self._procs:
                if p.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(signal.SIGTERM)

    def _start(self, number: int, group: list[str]) -> None:
        only = tuple(c for h in group for c in self._cells_by_host.get(h, []))
        opts = replace(self._options, resume=self._run_id, run_id=None, worker=True,
                       workers=1, only_cells=only, write_reports=False, join=False)
        p = subprocess.Popen([sys.executable, "-m", "harness.worker_main"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.stdin is not None and p.stdout is not None
        pickle.dump(WorkerStart(self._matrix_file, opts, number, os.getpid()), p.stdin)
        p.stdin.close()
        self._procs.append(p)
        out = p.stdout

        def relay() -> None:
            while True:
                try:
                    msg = pickle.load(out)
                except (EOFError, pickle.UnpicklingError, OSError):
                    break
                self._queue.put(msg)
            self._queue.put(WorkerExit(number))

        threading.Thread(target=relay, name=f"worker-{number}-relay", daemon=True).start()

    def run(self) -> WorkerResults:
        """Start the workers and relay their events until each has finished."""
        with self._lock:
            if self._stopping:
                return self.results
            for number, group in enumerate(self._groups):
                self._start(number, group)
        pending = set(range(len(self._procs)))
        reported: set[int] = set()
        while pending:
            msg = self._queue.get()
            if isinstance(msg, WorkerExit):
                n = msg.number
                code = self._procs[n].wait()
                if n not in reported:  # died without a word (killed, crashed)
                    self.results.errors.append(f"worker {n} ({', '.join(self._groups[n])}) "
                                               f"exited with status {code}")
                pending.discard(n)
                continue
            done = self._handle(msg)
            if done is not None:
                reported.add(done)
        return self.results

    def _handle(self, msg: WorkerMessage) -> int | None:
        """Relay one message; the worker's number when it has finished."""
        match msg:
            case WorkerBoot():
                self._emit(msg.event(self._run_id))
            case WorkerHost(host, state):
                self._emit(HostChanged(host, state))
            case WorkerDecided(cell_id, decision):
                self.results.decisions[cell_id] = decision
                self._emit(CellDecided(cell_id, decision, 0))
            case WorkerDone():
                self.results.set_aside.update(msg.set_aside)
                self.results.decisions.update(msg.decisions)
                self.results.skipped += msg.skipped
                self.results.interrupted |= msg.interrupted
                self.results.utilization.append(msg.utilization)
                return msg.number
            case WorkerError(number, message):
                self.results.errors.append(f"worker {number}: {message}")
                return number
        return None
