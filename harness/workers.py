"""Several worker processes for one run (``harness run --workers N``).

The controller (``Runner`` with ``workers > 1``) creates or resumes the run, splits the
hosts among the workers (each host in one worker, so a host's slot limit, its health and
each cell's adaptive stop stay in one place), starts one process per group and relays
their progress. Each worker is a ``Runner`` in ``worker`` mode on the same run: it boots
its hosts' cells and records into the same database (the store is safe for several
processes). Python threads share one CPU; processes use all of them.

A worker dies with its controller (``PR_SET_PDEATHSIG``): a controller killed with -9
leaves no orphan recording behind it, and ``--resume`` continues as usual. SIGTERM to the
controller (or its ``stop()``) stops the workers cleanly.
"""

from __future__ import annotations

import contextlib
import ctypes
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

from harness.model import BootResult, Outcome


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
    decisions: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    interrupted: bool = False
    utilization: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the controller died before prctl took effect
        os._exit(1)


def worker_main() -> None:
    """``python -m harness.workers``: reads ``(matrix file, options, number, parent pid)``
    pickled on stdin, writes pickled event tuples to its stdout (its own prints go to
    stderr)."""
    matrix_file, options, number, parent = pickle.load(sys.stdin.buffer)
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller handles Ctrl-C
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the event channel
    lock = threading.Lock()

    def put(msg: tuple[Any, ...]) -> None:
        with lock:
            pickle.dump(msg, channel)
            channel.flush()

    from harness.matrix import load_matrix
    from harness.runner import BootDone, CellDecided, HostChanged, Runner

    def emit(event: object) -> None:
        if isinstance(event, BootDone):
            r = event.result
            put(("boot", r.cell_id, r.index, r.outcome.value, r.host))
        elif isinstance(event, HostChanged):
            put(("host", event.host, event.state))
        elif isinstance(event, CellDecided):
            put(("decided", event.cell_id, event.decision))

    try:
        runner = Runner(load_matrix(matrix_file), options, on_event=emit)
        signal.signal(signal.SIGTERM, lambda s, f: runner.stop())
        res = runner.run()
        put(("done", number, res.set_aside, res.decisions, res.skipped,
             res.status == "interrupted", res.utilization))
    except BaseException as exc:  # reported by the controller
        put(("error", number, f"{type(exc).__name__}: {exc}"))


class WorkerPool:
    def __init__(self, matrix_file: Path, options: Any, groups: list[list[str]],
                 cells_by_host: Mapping[str, list[str]], run_id: str,
                 emit: Callable[[Any], None]) -> None:
        self._matrix_file = str(Path(matrix_file).resolve())
        self._options = options
        self._groups = groups
        self._cells_by_host = cells_by_host
        self._queue: queue.Queue[tuple[Any, ...]] = queue.Queue()
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
        p = subprocess.Popen([sys.executable, "-m", "harness.workers"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert p.stdin is not None and p.stdout is not None
        pickle.dump((self._matrix_file, opts, number, os.getpid()), p.stdin)
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
            self._queue.put(("exit", number))

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
            if msg[0] == "exit":
                n = int(msg[1])
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

    def _handle(self, msg: tuple[Any, ...]) -> int | None:
        """Relay one message; the worker's number when it has finished."""
        from harness.runner import BootDone, CellDecided, HostChanged

        kind = msg[0]
        if kind == "boot":
            _, cell_id, index, outcome, host = msg
            self._emit(BootDone(BootResult(self._run_id, cell_id, index, Outcome(outcome),
                                           host=host)))
        elif kind == "host":
            self._emit(HostChanged(msg[1], msg[2]))
        elif kind == "decided":
            self.results.decisions[msg[1]] = msg[2]
            self._emit(CellDecided(msg[1], msg[2], 0))
        elif kind == "done":
            _, w, set_aside, decisions, skipped, interrupted, util = msg
            self.results.set_aside.update(set_aside)
            self.results.decisions.update(decisions)
            self.results.skipped += skipped
            self.results.interrupted |= interrupted
            self.results.utilization.append(util)
            return int(w)
        elif kind == "error":
            self.results.errors.append(f"worker {msg[1]}: {msg[2]}")
            return int(msg[1])
        return None


if __name__ == "__main__":
    worker_main()
