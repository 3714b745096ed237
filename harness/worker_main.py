"""The worker process of ``harness run --workers N`` (``python -m harness.worker_main``):
reads one ``WorkerStart`` pickled on stdin, runs its share of the run with a ``Runner``
in worker mode, and writes typed messages (``harness.events``) pickled on its stdout (its
own prints go to stderr). The controller side is ``harness.workers``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import sys
import threading

from harness.events import (
    BootDone,
    CellDecided,
    HostChanged,
    WorkerBoot,
    WorkerDecided,
    WorkerDone,
    WorkerError,
    WorkerHost,
    WorkerMessage,
    WorkerStart,
)


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the controller died before prctl took effect
        os._exit(1)


def worker_main() -> None:
    start = pickle.load(sys.stdin.buffer)
    assert isinstance(start, WorkerStart)
    _die_with_parent(start.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller handles Ctrl-C
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the event channel
    lock = threading.Lock()

    def put(msg: WorkerMessage) -> None:
        with lock:
            pickle.dump(msg, channel)
            channel.flush()

    from harness.matrix import load_matrix
    from harness.runner import Runner

    def emit(event: object) -> None:
        if isinstance(event, BootDone):
            r = event.result
            put(WorkerBoot(r.cell_id, r.index, r.outcome, r.host))
        elif isinstance(event, HostChanged):
            put(WorkerHost(event.host, event.state))
        elif isinstance(event, CellDecided):
            put(WorkerDecided(event.cell_id, event.decision))

    try:
        runner = Runner(load_matrix(start.matrix_file), start.options, on_event=emit)
        signal.signal(signal.SIGTERM, lambda s, f: runner.stop())
        res = runner.run()
        put(WorkerDone(start.number, res.set_aside, res.decisions, res.skipped,
                       res.status == "interrupted", res.utilization))
    except BaseException as exc:  # reported by the controller
        put(WorkerError(start.number, f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    worker_main()
