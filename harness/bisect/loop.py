"""A bisection campaign on the lab: rounds of boots chosen by ``policy``, booted by the
same boot loop and scheduler as ``harness run``, recorded in the same store.

The state of a campaign is nothing but recorded boots: per build, the guest boots and
failures of every matching cell (same hosts, vCPUs and reboot mode) in the store, other
runs included unless the campaign says ``use_recorded: false``. So a killed campaign
resumed with ``--resume RUN`` rebuilds the same state and makes the same next choice, and
a new campaign of the same builds starts from what earlier ones learned. Infrastructure
errors are skips: never data, and a build that gives nothing but infrastructure errors
is set aside for the rest of the invocation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.model import BootResult, Cell, Outcome
from harness.scheduler import Chunk, Scheduler
from harness.store import DbTarget, Store, make_run_id, resolve_db
from harness.wiring import BackendFor, ConnectorFor, lab_parts

from .build import Build
from .builder import Builder, BuildOutcome
from .campaign import Campaign
from .model import Posterior, evaluate, posterior
from .policy import Round, choose_round
from .prior import Fitted, empirical_priors
from .rounds import spread_rounds

INFRA_SET_ASIDE = 3  # infrastructure errors in a row (after the loop's retries) per build


@dataclass(frozen=True)
class BisectOptions:
    resume: str | None = None  # continue this run
    run_id: str | None = None  # a new run's id
    time_scale: float = 0.0  # simulated hosts: 0 = no waiting
    db: DbTarget | None = None  # a file or postgresql:// URL (default: as harness run)
    reports_dir: Path = Path("reports")
    max_rounds: int | None = None  # stop after this many rounds (tests, dry looks)


@dataclass(frozen=True)
class RoundDone:
    number: int
    round: Round
    names: tuple[tuple[str, int], ...]  # (build, boots)
    best: str
    probability: float
    boots: int  # guest boots known after the round (recorded ones included)


@dataclass(frozen=True)
class BisectResult:
    run_id: str
    db: DbTarget
    status: str  # "found", "budget", "stopped", "no_build", "no_host", "interrupted"
    builds: tuple[str, ...]
    posterior: Posterior
    campaign_boots: int  # guest boots of this campaign's run
    infra_skips: int  # infrastructure errors of this campaign's run
    rounds: int
    elapsed_s: float
    set_aside: dict[str, str] = field(default_factory=dict)  # build or host -> why
    run_dir: Path | None = None  # the run's artifacts (reports/<run-id>/)
    prior: str = ""  # where the priors came from (empirical Bayes or fixed)

    @property
    def culprit(self) -> str:
        return self.builds[self.posterior.best]


@dataclass
class _State:
    boots: list[int]
    failures: list[int]
    infra_streak: list[int]
    campaign_boots: int = 0
    infra: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def cell_of(c: Campaign, host: str, build: str) -> Cell:
    return Cell(id=f"{host}/{build}/vcpu{c.vcpus}", matrix=c.matrix_name, host=host,
                guest=build, vcpus=c.vcpus, boots=1, reboot=c.reboot,
                memory_mib=c.memory_mib,
                host_attrs=tuple(sorted(c.lab.host(host).attributes.items())))


def known_good_history(store: Store, c: Campaign, run_id: str) -> list[tuple[int, int]]:
    """(guest boots, failures) of the known-good build in the campaign's cell, one pair per
    earlier run (this campaign's own run left out): the sample the empirical-Bayes prior
    is fitted to."""
    good = c.builds[0]
    out = []
    for r in store.list_runs():
        if r.id == run_id:
            continue
        n = k = 0
        for cell in store.cells(r.id):
            if (cell.guest != good or cell.host not in c.hosts or cell.vcpus != c.vcpus
                    or cell.reboot != c.reboot):
                continue
            for b in store.boots(r.id, cell.id, with_findings=False):
                if b.outcome is not Outcome.INFRA_ERROR:
                    n += 1
                    k += bool(c.failure(b))
        if n:
            out.append((n, k))
    return out


def recorded_counts(store: Store, c: Campaign, run_id: str
                    ) -> tuple[list[int], list[int], int, int]:
    """Per build, guest boots and failures recorded for the campaign's cell (this run, and
    the other runs unless ``use_recorded`` is off); then this run's guest boots and its
    infrastructure errors."""
    index = {b: i for i, b in enumerate(c.builds)}
    k = [0] * len(c.builds)
    f = [0] * len(c.builds)
    own = infra = 0
    runs = [r.id for r in store.list_runs()] if c.use_recorded else [run_id]
    for rid in runs:
        for cell in store.cells(rid):
            i = index.get(cell.guest)
            if (i is None or cell.host not in c.hosts or cell.vcpus != c.vcpus
                    or cell.reboot != c.reboot):
                continue
            for b in store.boots(rid, cell.id, with_findings=False):
                if b.outcome is Outcome.INFRA_ERROR:
                    infra += rid == run_id
                    continue
                k[i] += 1
                f[i] += bool(c.failure(b))
                own += rid == run_id
    return k, f, own, infra


def next_round(boots: np.ndarray, failures: np.ndarray, slots: int, c: Campaign,
               usable: np.ndarray) -> Round:
    """One boot, or a round spread over up to ``slots`` builds (``harness.bisect.rounds``)."""
    if slots <= 1:
        return choose_round(boots, failures, 1, c.priors, c.model, usable=usable)
    ev = evaluate(boots, failures, c.priors, c.model)
    alloc = spread_rounds(ev.post, ev.q, ev.g, slots, usable=usable)
    return Round(tuple((int(b), int(m)) for b, m in enumerate(alloc) if m), float("nan"))


class BisectRunner:
    """Runs one campaign: ``BisectRunner(campaign, options).run()``."""

    def __init__(self, campaign: Campaign, options: BisectOptions | None = None, *,
                 on_round: Callable[[RoundDone], None] | None = None,
                 on_boot: Callable[[BootResult], None] | None = None,
                 backend_for: BackendFor | None = None,
                 connector_for: ConnectorFor | None = None,
                 on_build: Callable[[Build, BuildOutcome | None], None] | None = None
                 ) -> None:
        self.c = campaign
        self.o = options or BisectOptions()
        self.fitted: Fitted | None = None  # the empirical-Bayes prior, once run
        self._on_round = on_round or (lambda r: None)
        self._on_boot = on_boot or (lambda r: None)
        self._backend_for = backend_for
        self._connector_for = connector_for
        self._stop = threading.Event()
        self._on_build = on_build or (lambda b, r: None)
        self._builder = (Builder(campaign.build, stop=self._stop.is_set)
                         if campaign.build is not None else None)
        self._scheduler: Scheduler | None = None
        self._loop: Any = None

    def stop(self) -> None:
        """Stop after the boots under way (safe from a signal handler)."""
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.stop()

    # --- wiring: the same parts ``harness run`` uses --------------------------------------

    def _boot_loop(self, store: Store, run_id: str, run_dir: Path) -> Any:
        from harness.bootloop import BootLoop
        from harness.lab import hooks_for

        lab = self.c.lab
        parts = lab_parts(lab, self.c.hosts, self.o.time_scale,
                          backend_for=self._backend_for, connector_for=self._connector_for)
        return BootLoop(backend_for=parts.backend_for, connector_for=parts.connector_for,
                        sink=store, lab=lab, workdir=run_dir, run_id=run_id,
                        hooks_for=hooks_for(lab), **parts.loop_clock())

    def _open_run(self, store: Store) -> tuple[str, Path]:
        c = self.c
        cells = [cell_of(c, h, b) for b in c.builds for h in c.hosts]
        if self.o.resume:
            info = store.get_run(self.o.resume)
            if info.matrix != c.matrix_name:
                raise ConfigError(f"run {self.o.resume!r} is {info.matrix!r}, not a run of "
                                  f"campaign {c.name!r} ({c.matrix_name!r})")
            store.resume_run(info.id, cells)
        else:
            run_id = self.o.run_id or make_run_id(c.run_prefix)
            info = store.create_run(
                run_id, c.matrix_name, cells, matrix_file=str(c.file),
                config={"campaign": str(c.file), "builds": list(c.builds),
                        "hosts": list(c.hosts), "vcpus": c.vcpus, "reboot": str(c.reboot),
                        "failure": c.failure.describe(), "confidence": c.confidence,
                        "model": c.model, "budget_boots": c.budget_boots,
                        "budget_hours": c.budget_hours, "slots": c.slots,
                        "build": c.build.source if c.build is not None else None},
                artifacts_dir=self.o.reports_dir / run_id)
        return info.id, Path(info.artifacts_dir or self.o.reports_dir / info.id)

    # --- the campaign ------------------------------------------------------------------

    def run(self) -> BisectResult:
        c, o = self.c, self.o
        db = resolve_db(o.db, c.lab.name, c.lab.spec.results, o.reports_dir)
        t0 = time.monotonic()
        if self._connector_for is None:  # the lab's own SSH: its files, before any boot
            from harness.preflight import check_ssh_files

            check_ssh_files(c.lab, [cell_of(c, h, b) for b in c.builds for h in c.hosts])
        with Store(db) as store:
            run_id, run_dir = self._open_run(store)
            k, f, own, infra = recorded_counts(store, c, run_id)
            st = _State(k, f, [0] * len(c.builds), own, infra)
            if c.empirical and c.use_recorded:
                self.fitted = empirical_priors(known_good_history(store, c, run_id), c.priors)
                c = self.c = replace(c, priors=self.fitted.priors)
            next_index = {cell_of(c, h, b).id: 1 + max(store.recorded(
                run_id, cell_of(c, h, b).id, include_infra=True), default=-1)
                for b in c.builds for h in c.hosts}
            loop = self._loop = self._boot_loop(store, run_id, run_dir)
            set_aside: dict[str, str] = {}
            unbuilt: set[int] = set()  # builds whose build command failed
            rounds = 0
            status = "stopped"
            while True:
                post = posterior(st.boots, st.failures, c.priors, c.model)
                if post.probability >= c.confidence:
                    status = "found"
                    break
                spent = st.campaign_boots
                hours = (time.monotonic() - t0) / 3600
                if ((c.budget_boots is not None and spent >= c.budget_boots)
                        or (c.budget_hours is not None and hours >= c.budget_hours)):
                    status = "budget"
                    break
                if self._stop.is_set():
                    status = "interrupted"
                    break
                if o.max_rounds is not None and rounds >= o.max_rounds:
                    break
                infra_ok = [st.infra_streak[i] < INFRA_SET_ASIDE for i in range(len(c.builds))]
                for i, b in enumerate(c.builds):
                    if not infra_ok[i] and b not in set_aside:
                        set_aside[b] = f"{INFRA_SET_ASIDE} infrastructure errors in a row"
                usable = np.array([ok and i not in unbuilt for i, ok in enumerate(infra_ok)])
                hosts = [h for h in c.hosts if not loop.health.failed(h)]
                for h in c.hosts:
                    if h not in hosts and h not in set_aside:
                        set_aside[h] = loop.health.why(h) or "set aside"
                if not hosts:
                    status = "no_host"
                    break
                if not usable.any():
                    status = "no_build"
                    break
                slots = c.slots
                if c.budget_boots is not None:
                    slots = min(slots, c.budget_boots - spent)
                rnd = next_round(np.array(st.boots), np.array(st.failures), slots, c,
                                 usable)
                if self._builder is not None and not self._make_builds(rnd, unbuilt,
                                                                       set_aside):
                    if self._stop.is_set():
                        status = "interrupted"
                        break
                    continue  # choose again without the builds that failed to build
                plan = self._plan(rnd, hosts, next_index)
                self._run_round(loop, plan, st)
                rounds += 1
                post = posterior(st.boots, st.failures, c.priors, c.model)
                self._on_round(RoundDone(rounds, rnd, tuple((c.builds[b], m)
                                                            for b, m in rnd.boots),
                                         c.builds[post.best], post.probability,
                                         post.total_boots))
                if self._stop.is_set():
                    status = "interrupted"
                    break
            store.mark_finished(run_id, status)
        prior = (self.fitted.describe() if self.fitted is not None
                 else "priors as the campaign file gives them")
        return BisectResult(run_id, db, status, c.builds, post, st.campaign_boots, st.infra,
                            rounds, time.monotonic() - t0, set_aside, run_dir, prior)

    def _make_builds(self, rnd: Round, unbuilt: set[int], set_aside: dict[str, str]) -> bool:
        """Make the round's builds that are not made yet (one at a time: a build uses the
        whole machine); False if one failed (set aside: never a guest failure) or the
        campaign was stopped."""
        assert self._builder is not None and self.c.build is not None
        ok = True
        for i, _ in rnd.boots:
            b = self.c.build.builds[i]
            done = self._builder.recorded(b)
            if done is None:
                self._on_build(b, None)
                done = self._builder.ensure(b)
            self._on_build(b, done)
            if done.interrupted:
                return False
            if not done.ok:
                unbuilt.add(i)
                set_aside[b.name] = f"build failed: {done.error}"
                ok = False
        return ok

    def _plan(self, rnd: Round, hosts: list[str], next_index: dict[str, int]
              ) -> dict[str, list[Chunk]]:
        """Spread the round's boots over the hosts' slots, one chunk per (host, build)."""
        c = self.c
        free = {h: c.lab.host(h).slots for h in hosts}
        per: dict[tuple[str, int], int] = {}
        order = [h for h in hosts for _ in range(free[h])]
        n = 0
        for b, m in rnd.boots:
            for _ in range(m):
                h = order[n % len(order)]
                per[(h, b)] = per.get((h, b), 0) + 1
                n += 1
        plan: dict[str, list[Chunk]] = {}
        for (h, b), m in per.items():
            cell = cell_of(c, h, c.builds[b])
            start = next_index[cell.id]
            next_index[cell.id] = start + m
            cell = replace(cell, boots=start + m)
            for j in range(m):  # one boot per chunk: the host's slots share the work
                plan.setdefault(h, []).append(Chunk(cell, (start + j,)))
        return plan

    def _run_round(self, loop: Any, plan: dict[str, list[Chunk]], st: _State) -> None:
        index = {b: i for i, b in enumerate(self.c.builds)}

        def run_chunk(chunk: Chunk) -> Iterator[BootResult]:
            it: Iterator[BootResult] = loop.run_chunk(chunk.cell, list(chunk.indices))
            return it

        def on_result(r: BootResult) -> None:
            i = index[r.guest]
            with st.lock:
                if r.outcome is Outcome.INFRA_ERROR:
                    st.infra += 1
                    st.infra_streak[i] += 1
                else:
                    st.boots[i] += 1
                    st.failures[i] += bool(self.c.failure(r))
                    st.campaign_boots += 1
                    st.infra_streak[i] = 0
            self._on_boot(r)

        slots = {h: self.c.lab.host(h).slots for h in plan}
        sched = Scheduler(plan, slots, run_chunk, on_result=on_result,
                          host_ok=loop.health.why, on_stop=loop.request_stop)
        self._scheduler = sched
        if self._stop.is_set():
            sched.stop()
        sched.run()
        self._scheduler = None
