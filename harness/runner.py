"""One run of a matrix: matrix -> store (create or resume) -> scheduler -> boot loop ->
store, with progress events for the CLI and a summary at the end.

    runner = Runner(matrix, RunOptions(time_scale=0), on_event=print)
    summary = runner.run()          # Runner.stop() from a signal handler stops it cleanly

Backends: hosts whose URI starts with ``sim:`` get the simulated backend and connector
(``harness.backend.sim``), the others libvirt (``harness.backend.libvirt``) and SSH
(``harness.collect.ssh``). Tests and the local lab hand in their own factories.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__
from harness.adaptive import AdaptiveSettings, Decision, SequentialStopper
from harness.errors import ConfigError, EnvironmentFault, environment_fault
from harness.events import BootDone, CellDecided, Event, HostChanged, RunStarted
from harness.matrix import Matrix
from harness.model import BootResult, Cell, Outcome
from harness.planprint import changes, plan_print
from harness.scheduler import Chunk, Scheduler, SchedulerStats, plan_chunks
from harness.sim.clock import SimClock
from harness.stats import CellCounts
from harness.store import DbTarget, Store, StoreError, make_run_id, resolve_db
from harness.wiring import BackendFor, ConnectorFor, lab_parts


@dataclass(frozen=True)
class RunOptions:
    run_id: str | None = None  # a new run's id (default: <matrix>-<utc time>-<hex>)
    resume: str | None = None  # continue this run where it stopped
    boots: int | None = None  # boots per cell instead of the matrix's
    time_scale: float | None = None  # simulated hosts: 0 = no waiting, 1 = real time
    chunk_size: int = 5  # consecutive boots of a cell handed to a slot at once
    order_seed: int | None = None  # the interleaving; default: from the run id
    max_per_host: int | None = None  # cap on a host's slots
    adaptive: bool | None = None  # None: as the matrix says
    reports_dir: Path = Path("reports")
    db: DbTarget | None = None  # a file or postgresql:// URL; default: $VMBH_DB, the lab's
    # results:, else reports/<lab>.db
    write_reports: bool = True
    only_cells: tuple[str, ...] | None = None  # run just these cells (pytest: one per test)
    join: bool = False  # with resume: add to a run others write too; leave it running
    share: str | None = None  # --join: boot this run with other controllers (work queue)
    lease_s: float = 15.0  # --join: a controller silent this long is presumed dead
    workers: int = 1  # processes booting the run (hosts split among them)
    worker: bool = False  # this process is one of them (set by harness.workers)


# progress events: harness/events.py (also what worker processes send, typed)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    matrix: str
    status: str  # "finished", "interrupted", "incomplete" (hosts set aside)
    db: DbTarget
    run_dir: Path
    cells: tuple[Cell, ...]
    counts: dict[str, CellCounts]
    booted: int  # boots recorded by this invocation
    elapsed_s: float
    set_aside: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)  # adaptive stops
    skipped: int = 0  # boots adaptive stopping saved
    missing: int = 0  # boots of the plan not recorded (interrupted, host set aside)
    reports: dict[str, Path] = field(default_factory=dict)  # format -> file
    utilization: float = 0.0

    @property
    def resume_command(self) -> str:
        return f"harness run MATRIX --resume {self.run_id}"


class Runner:
    def __init__(self, matrix: Matrix, options: RunOptions | None = None, *,
                 on_event: Callable[[Event], None] | None = None,
                 backend_for: BackendFor | None = None,
                 connector_for: ConnectorFor | None = None,
                 hooks_for: Any = None,
                 store_factory: Callable[[DbTarget], Store] | None = None) -> None:
        self.matrix = matrix
        self.lab = matrix.lab
        self.options = options or RunOptions()
        self._emit = on_event or (lambda e: None)
        self._backend_for = backend_for
        self._connector_for = connector_for
        self._hooks_for = hooks_for
        self._store_factory = store_factory
        self._scheduler: Scheduler | None = None
        self._loop: Any = None
        self._pool: Any = None
        self._stop = threading.Event()
        self.sim_clock: SimClock | None = None  # set with the boot loop
        self._sim_only = all(h.is_sim for h in self.lab.hosts.values())

    # --- wiring ------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop handing out boots (safe from a signal handler); recorded boots stay."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._loop is not None:
            self._loop.request_stop()  # the boot under way is abandoned and cleaned up
        if self._pool is not None:
            self._pool.stop()

    def _cells(self) -> list[Cell]:
        cells = list(self.matrix.cells)
        if self.options.boots is not None:
            if self.options.boots < 1:
                raise ConfigError("--boots must be at least 1")
            cells = [replace(c, boots=self.options.boots) for c in cells]
        return cells

    def _only(self, cells: list[Cell]) -> list[Cell]:
        if self.options.only_cells is None:
            return cells
        wanted = set(self.options.only_cells)
        return [c for c in cells if c.id in wanted]

    def _boot_loop(self, store: Store, run_id: str, run_dir: Path) -> Any:
        from harness.bootloop import BootLoop

        parts = lab_parts(self.lab, self.lab.hosts, self.options.time_scale or 0.0,
                          backend_for=self._backend_for, connector_for=self._connector_for)
        self.sim_clock = parts.clock
        hooks_for = self._hooks_for
        if hooks_for is None:
            # the local lab's fault injection (vCPU stalls) where the lab file asks for it
            from harness.lab import hooks_for as lab_hooks_for

            hooks_for = lab_hooks_for(self.lab)
        return BootLoop(backend_for=parts.backend_for, connector_for=parts.connector_for,
                        sink=store, lab=self.lab, workdir=run_dir, run_id=run_id,
                        hooks_for=hooks_for, **parts.loop_clock())

    def _config(self, cells: list[Cell]) -> dict[str, Any]:
        from harness.hostfacts import gather as gather_host_facts

        o = self.options
        return {
            "harness": __version__, "python": platform.python_version(),
            "lab": self.lab.name, "lab_file": str(self.lab.file),
            "matrix_file": str(self.matrix.file), "boots": o.boots,
            "time_scale": o.time_scale, "chunk_size": o.chunk_size,
            "order_seed": o.order_seed, "max_per_host": o.max_per_host,
            "adaptive": self._adaptive() is not None,
            "sim_seed": (self.lab.spec.sim or {}).get("seed"),
            "total_boots": sum(c.boots for c in cells),
            # what the Ansible role kvm_host gathered (or, locally, the same read here)
            "host_facts": gather_host_facts(self.lab, {c.host for c in cells},
                                            o.reports_dir / "hosts"),
            "plan": plan_print(cells, self.lab),
        }

    def _check_resume(self, run_id: str, config: Mapping[str, Any],
                      stored: list[Cell]) -> None:
        """Refuse to continue a run whose plan or lab changed in a way that changes what
        its boots mean (see ``harness.planprint``); runs recorded before the harness kept
        their plan are only checked for their cells."""
        now = self._only(self._cells())
        boots = config.get("boots")
        if self.options.boots is None and isinstance(boots, int):  # started with --boots
            now = [replace(c, boots=boots) for c in now]
        old = config.get("plan")
        if not isinstance(old, dict):
            old = plan_print(stored, self.lab) if stored else None
        if old is None:
            return
        what = changes(old, plan_print(now, self.lab))
        if what:
            raise ConfigError(
                f"cannot resume run {run_id!r}: the matrix or lab changed since it started:\n  "
                + "\n  ".join(what)
                + "\nresume only continues the same plan on the same lab (docs/running.md); "
                "start a new run for the changed one")

    def _adaptive(self) -> AdaptiveSettings | None:
        model = self.matrix.model.adaptive
        if self.options.adaptive is False:
            return None
        if model is None:
            return AdaptiveSettings() if self.options.adaptive else None
        return AdaptiveSettings(model.min_boots, model.alpha, model.beta)

    # --- the run -----------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Run the plan. A fault of this machine (disk full, a database or folder that
        cannot be written) raises ``EnvironmentFault`` saying how to continue the run,
        which is left as it stands (its recorded boots are kept; a resume re-does the
        rest); nothing about the run is recorded before the input has been checked."""
        self._run_id: str | None = None
        try:
            return self._run()
        except (OSError, StoreError) as exc:
            raise self._environment_fault(exc) from None

    def _environment_fault(self, exc: OSError | StoreError) -> EnvironmentFault:
        run_id = self._run_id
        resume = (None if run_id is None or self.options.join or self.options.worker
                  else f"harness run {self.matrix.file} --resume {run_id}")
        if run_id is not None and resume is not None:
            with contextlib.suppress(Exception):  # best effort: the disk may be full
                db = resolve_db(self.options.db, self.lab.name, self.lab.spec.results,
                                self.options.reports_dir)
                with self._open_store(db) as store:
                    store.mark_finished(run_id, "interrupted")
        if isinstance(exc, StoreError):
            return EnvironmentFault(str(exc), resume=resume)
        return environment_fault(exc, f"run {run_id}: cannot write" if run_id else "",
                                 resume=resume)

    def _preflight(self, db: DbTarget) -> None:
        """What can be checked before anything is written: the size of the run, the
        database's and the reports folder's places (EnvironmentFault when this machine
        refuses them)."""
        from harness.inventory import path_problem
        from harness.matrix.load import MAX_TOTAL_BOOTS

        if self.options.boots is not None:
            total = self.options.boots * len(self.matrix.cells)
            if total > MAX_TOTAL_BOOTS:
                raise ConfigError(f"--boots {self.options.boots} makes {total} boots, more "
                                  f"than {MAX_TOTAL_BOOTS} in one run: split the matrix")
        if (self.options.resume and not self.options.join and not isinstance(db, str)
                and not db.exists()):  # never create a database to resume
            raise ConfigError(f"cannot resume run {self.options.resume!r}: there is no "
                              f"results database at {db} (see --db / --reports-dir)")
        problem = None if isinstance(db, str) else path_problem(db)
        if problem:
            raise EnvironmentFault(f"results database: {problem}")
        problem = path_problem(self.options.reports_dir, folder=True)
        if problem:
            raise EnvironmentFault(f"reports folder: {problem}")

    def _run(self) -> RunSummary:
        o = self.options
        db = resolve_db(o.db, self.lab.name, self.lab.spec.results, o.reports_dir)
        t0 = time.monotonic()
        self._preflight(db)
        if self._connector_for is None:  # the lab's own SSH: its files, before any boot
            from harness.preflight import check_ssh_files

            check_ssh_files(self.lab, self._only(self._cells()))
        with self._open_store(db) as store, contextlib.ExitStack() as held:
            if o.share:
                return self._run_shared(store, db, o.share, t0)
            if o.resume:
                info = store.get_run(o.resume)
                if info.matrix != self.matrix.name:
                    raise ConfigError(f"run {o.resume!r} is a run of matrix {info.matrix!r}, "
                                      f"not of {self.matrix.name!r}")
                stored = store.cells(o.resume)
                if (o.boots is not None and not o.join
                        and any(c.boots != o.boots for c in stored)):
                    raise ConfigError(f"--boots cannot change run {o.resume!r} while resuming "
                                      f"it (it has {stored[0].boots} boots per cell); start a "
                                      "new run for another count")
                if not (o.join or o.worker):
                    self._check_resume(o.resume, info.config, stored)
                cells = self._cells() if o.join else stored or self._cells()
                cells = self._only(cells)
                run_id = self._run_id = o.resume
                if not (o.join or o.worker):  # one controller per run (joiners share it)
                    held.enter_context(store.hold_run(run_id))
                seed = info.config.get("order_seed")
                if o.join:
                    store.add_cells(run_id, cells)
                elif not o.worker:
                    store.resume_run(run_id, cells)
            else:
                cells = self._only(self._cells())
                run_id = o.run_id if o.run_id is not None else make_run_id(self.matrix.name)
                seed = o.order_seed
                info = store.create_run(run_id, self.matrix.name, cells,
                                        matrix_file=str(self.matrix.file),
                                        config=self._config(cells),
                                        artifacts_dir=o.reports_dir / run_id,
                                        lab=self.lab.name)
                self._run_id = run_id
                if not o.worker:
                    held.enter_context(store.hold_run(run_id))
            run_dir = Path(info.artifacts_dir or o.reports_dir / run_id)
            done = {c.id: store.recorded(run_id, c.id) for c in cells}
            order_seed = seed if isinstance(seed, int) else _seed_of(run_id)
            plan = plan_chunks(cells, done, chunk_size=o.chunk_size, seed=order_seed)
            slots = {h: self.lab.host(h).slots for h in plan}
            already = sum(len(v) for v in done.values())
            self._emit(RunStarted(run_id, self.matrix.name, sum(c.boots for c in cells),
                                  already, slots, db, bool(o.resume)))
            decisions: dict[str, Decision]
            if (o.workers > 1 and not o.worker and self._backend_for is None
                    and self._connector_for is None and self._hooks_for is None):
                stats, decisions, util = self._run_workers(db, run_id, cells, plan,
                                                           order_seed)
            else:
                prior = store.counts(run_id)
                settings = self._adaptive()
                stopper = SequentialStopper(cells, settings, prior) if settings else None
                for c in cells if stopper else ():  # decided by boots recorded before
                    if stopper and (made := stopper.record(c.id)) is not None:
                        store.record_decision(run_id, made)
                loop = self._loop = self._boot_loop(store, run_id, run_dir)
                stats = self._schedule(loop, plan, slots, stopper, store, run_id)
                decisions = {c.id: d for c in cells
                             if stopper and (d := stopper.decision(c.id)) is not None}
                util = stats.utilization()
            for host, why in stats.set_aside.items():  # the run's completeness, for reports
                store.set_host_state(run_id, host, "set_aside", why)
            counts = store.counts(run_id)
            recorded = sum(len(store.recorded(run_id, c.id)) for c in cells)
            target = sum(c.boots for c in cells) - stats.skipped
            missing = max(0, target - recorded)
            status = ("interrupted" if stats.interrupted
                      else "incomplete" if missing else "finished")
            if not (o.join or o.worker):
                store.mark_finished(run_id, status)
            reports = (self._reports(store, run_id, run_dir)
                       if o.write_reports and not (o.join or o.worker)
                       and status != "interrupted" else {})
        return RunSummary(run_id, self.matrix.name, status, db, run_dir, tuple(cells), counts,
                          recorded - already, time.monotonic() - t0, dict(stats.set_aside),
                          decisions, stats.skipped, missing, reports, util)

    def _run_shared(self, store: Store, db: DbTarget, run_id: str, t0: float) -> RunSummary:
        """``--join RUN_ID``: create the run or join it, and boot its plan from the work
        queue in the database with every other controller on it (harness/join.py)."""
        from harness.join import SharedScheduler
        from harness.store.queue import WorkQueue

        o = self.options
        if o.workers > 1:
            raise ConfigError("--join and --workers: start several --join controllers "
                              "instead (each is one process)")
        if self._adaptive() is not None:
            raise ConfigError("--join does not stop cells early: run it with --no-adaptive")
        self._run_id = run_id
        cells = self._only(self._cells())
        info = store.join_run(run_id, self.matrix.name, cells,
                              matrix_file=str(self.matrix.file), config=self._config(cells),
                              artifacts_dir=o.reports_dir / run_id, lab=self.lab.name)
        stored = {c.id: c for c in store.cells(run_id)}
        if {c.id for c in cells} - set(stored) or any(
                stored[c.id].boots != c.boots for c in cells):
            raise ConfigError(f"run {run_id!r} was started with other cells or boots than "
                              "this controller's matrix and options: join it with the same "
                              "matrix and --boots")
        cells = [stored[c.id] for c in cells]
        run_dir = Path(info.artifacts_dir or o.reports_dir / run_id)
        seed = info.config.get("order_seed")
        order_seed = seed if isinstance(seed, int) else _seed_of(run_id)
        done = {c.id: store.recorded(run_id, c.id) for c in cells}
        queue = WorkQueue(store, run_id, lease_s=o.lease_s)
        cap = o.max_per_host or 1 << 30
        queue.ensure_plan(plan_chunks(cells, done, chunk_size=o.chunk_size, seed=order_seed),
                          {h: min(self.lab.host(h).slots, cap) for h in {c.host for c in cells}})
        slots = {h: n for h, n in queue.hosts().items() if h in self.lab.hosts}
        already = sum(len(v) for v in done.values())
        self._emit(RunStarted(run_id, self.matrix.name, sum(c.boots for c in cells),
                              already, slots, db, True))
        loop = self._loop = self._boot_loop(store, run_id, run_dir)
        mine = [0]  # guest boots this controller recorded

        def on_result(r: BootResult) -> None:
            if r.outcome is not Outcome.INFRA_ERROR:
                mine[0] += 1
            self._emit(BootDone(r))

        queue.join()
        try:
            sched = SharedScheduler(queue, {c.id: c for c in cells}, slots,
                                    lambda ch: loop.run_chunk(ch.cell, list(ch.indices)),
                                    on_result=on_result,
                                    on_host=lambda h, s: self._emit(HostChanged(h, s)),
                                    host_ok=lambda h: loop.health.why(h),
                                    on_stop=loop.request_stop, **self._sim_pacing())
            self._scheduler = sched
            if self._stop.is_set():
                sched.stop()
            stats = sched.run()
        finally:
            queue.leave()
        for host, why in stats.set_aside.items():
            store.set_host_state(run_id, host, "set_aside", why)
        counts = store.counts(run_id)
        recorded = sum(len(store.recorded(run_id, c.id)) for c in cells)
        missing = max(0, sum(c.boots for c in cells) - recorded)
        status = ("interrupted" if stats.interrupted
                  else "incomplete" if missing else "finished")
        reports: dict[str, Path] = {}
        # the controller that sees the last chunk done first marks the run and reports
        if (status == "finished" and queue.left() == 0 and queue.claim_finish()
                and o.write_reports):
            reports = self._reports(store, run_id, run_dir)
        return RunSummary(run_id, self.matrix.name, status, db, run_dir, tuple(cells), counts,
                          mine[0], time.monotonic() - t0, dict(stats.set_aside),
                          {}, 0, missing, reports, stats.utilization())

    def _run_workers(self, db: DbTarget, run_id: str, cells: list[Cell],
                     plan: dict[str, list[Chunk]], order_seed: int
                     ) -> tuple[SchedulerStats, dict[str, Decision], float]:
        """Boot the plan in ``workers`` processes (hosts split among them)."""
        from harness.errors import HarnessError
        from harness.workers import WorkerPool, split_hosts

        todo = {h: sum(len(c.indices) for c in chunks) for h, chunks in plan.items()}
        by_host: dict[str, list[str]] = {}
        for c in cells:
            by_host.setdefault(c.host, []).append(c.id)
        opts = replace(self.options, db=db if isinstance(db, str) else db.resolve(),
                       order_seed=order_seed)
        # one process per embedded libvirt root: its hosts share a worker
        together = {h: self.lab.host(h).uri for h in todo
                    if self.lab.host(h).capabilities.one_process}
        pool = self._pool = WorkerPool(self.matrix.file, opts,
                                       split_hosts(todo, self.options.workers, together),
                                       by_host,
                                       run_id, self._emit)
        if self._stop.is_set():
            return SchedulerStats(interrupted=True), {}, 0.0
        res = pool.run()
        if res.errors:
            raise HarnessError("a worker process failed: " + "; ".join(res.errors))
        stats = SchedulerStats(set_aside=res.set_aside, skipped=res.skipped,
                               interrupted=res.interrupted)
        util = sum(res.utilization) / len(res.utilization) if res.utilization else 0.0
        decisions: dict[str, Decision] = {
            k: ("pass" if v == "pass" else "fail") for k, v in res.decisions.items()}
        return stats, decisions, util

    def _schedule(self, loop: Any, plan: dict[str, list[Chunk]], slots: dict[str, int],
                  stopper: SequentialStopper | None, store: Store | None = None,
                  run_id: str = "") -> SchedulerStats:
        reported: set[str] = set()
        lock = threading.Lock()

        def run_chunk(chunk: Chunk) -> Iterator[BootResult]:
            return loop.run_chunk(chunk.cell, list(chunk.indices))

        def on_result(result: BootResult) -> None:
            self._emit(BootDone(result))
            if stopper is None:
                return
            d = stopper.decision(result.cell_id)
            if d is not None:
                with lock:
                    if result.cell_id in reported:
                        return
                    reported.add(result.cell_id)
                made = stopper.record(result.cell_id)
                if store is not None and made is not None:
                    store.record_decision(run_id, made)  # the boot and interval it was made on
                self._emit(CellDecided(result.cell_id, d, 0))

        def host_ok(host: str) -> str | None:
            why: str | None = loop.health.why(host)
            return why

        sched = Scheduler(plan, slots, run_chunk, on_result=on_result,
                          on_host=lambda h, s: self._emit(HostChanged(h, s)),
                          host_ok=host_ok, stopper=stopper, max_per_host=self.options.max_per_host,
                          on_stop=loop.request_stop, **self._sim_pacing())
        self._scheduler = sched
        if self._stop.is_set():
            sched.stop()
        return sched.run()

    def _open_store(self, db: DbTarget) -> Store:
        """The run's store. A lab of simulated hosts only does without an fsync per boot
        (a simulated boot costs milliseconds to redo, a real one minutes): kill -9 still
        loses nothing recorded; a power cut may lose the last boots, which resume redoes."""
        if self._store_factory is not None:
            return self._store_factory(db)
        return Store(db, durable=not self._sim_only)

    def _sim_pacing(self) -> dict[str, Any]:
        """A simulated lab at time scale 0 never waits for real: its slots are pure work,
        so one of them runs at a time in a process (more only fight over the GIL: 800
        boots/s with one, 565 with two, on a RAM disk; ``--workers`` is how to use more
        cores), and slot busy time is measured in simulated time (each slot's own clock),
        the only time such a run has."""
        clock = self.sim_clock
        if clock is None or clock.time_scale > 0 or not self._sim_only:
            return {}
        return {"gate": 1, "clock": clock.now}

    def _reports(self, store: Store, run_id: str, run_dir: Path) -> dict[str, Path]:
        from harness.report import write_reports

        return write_reports(store, run_id, out_dir=run_dir)


def _seed_of(run_id: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(run_id.encode(), digest_size=4).digest(), "big")


def guest_failures(counts: CellCounts) -> int:
    return counts.vcpu_offline + counts.boot_failure


__all__ = ["BootDone", "CellDecided", "Event", "HostChanged", "Outcome", "RunOptions",
           "RunStarted", "RunSummary", "Runner"]
