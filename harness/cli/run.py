"""``harness run MATRIX``: boot every cell, record every boot, print the result table.

Exit status: 0 every cell passed, is clean (no failure seen) or is undecided, 1 some cell
failed its expectation, 2 a mistake in the input (printed as ``file:line:col: message``;
nothing written), 3 the environment or lab failed (a host set aside, disk full, database or
reports folder unwritable: the run is kept, resume it), 130 interrupted (resume it).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from harness.cli import EXIT_HELP
from harness.matrix import load_matrix
from harness.model import Outcome
from harness.runner import (
    BootDone,
    CellDecided,
    Event,
    HostChanged,
    Runner,
    RunOptions,
    RunStarted,
    RunSummary,
)
from harness.stats import judge_cell
from harness.store.target import describe, parse_target

VERDICT_STYLE = {"pass": "green", "clean": "cyan", "fail": "bold red", "undecided": "yellow",
                 "not_judged": "dim"}


class LiveView:
    """Thread-safe counters fed by the runner's events, drawn by rich.Live."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[failures]}"), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), console=console, transient=False)
        self.task = self.progress.add_task("boots", total=None, failures="")
        self.hosts: dict[str, str] = {}
        self.per_host: dict[str, Counter[str]] = {}
        self.outcomes: Counter[str] = Counter()
        self.decided = 0

    def __call__(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, RunStarted):
                self.progress.update(self.task, total=event.total, completed=event.done)
                for h in event.slots:
                    self.hosts.setdefault(h, "waiting")
                    self.per_host.setdefault(h, Counter())
            elif isinstance(event, BootDone):
                r = event.result
                self.outcomes[r.outcome.value] += 1
                self.per_host.setdefault(r.host, Counter())[r.outcome.value] += 1
                if r.outcome is not Outcome.INFRA_ERROR:
                    self.progress.advance(self.task)
                self.progress.update(self.task, failures=self._failures())
            elif isinstance(event, HostChanged):
                self.hosts[event.host] = event.state
            elif isinstance(event, CellDecided):
                self.decided += 1

    def _failures(self) -> str:
        o = self.outcomes
        text = (f"[red]{o['vcpu_offline']} vCPU-offline[/] [red]{o['boot_failure']} boot "
                f"failures[/] [magenta]{o['infra_error']} infra[/]")
        if self.decided:
            text += f" [cyan]{self.decided} cells decided[/]"
        return text

    def __rich__(self) -> Group:
        with self.lock:
            hosts = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
            for col in ("host", "state", "ok", "vCPU-offline", "boot failure", "infra"):
                hosts.add_column(col, justify="left" if col in ("host", "state") else "right")
            for h in sorted(self.hosts):
                c = self.per_host.get(h, Counter())
                state = self.hosts[h]
                style = "red" if state.startswith("set aside") else (
                    "green" if state == "done" else "")
                hosts.add_row(h, f"[{style}]{state}[/]" if style else state, str(c["ok"]),
                              str(c["vcpu_offline"]), str(c["boot_failure"]),
                              str(c["infra_error"]))
            return Group(self.progress, hosts)


class ProgressLog:
    """Without a terminal (journald, cron) or with --quiet: a plain line now and then
    (every ``every`` seconds, and when a host changes state), so the nightly journal shows
    a run is alive and where it is."""

    def __init__(self, view: LiveView, every: float, echo: Any = None) -> None:
        self.view = view
        self.every = every
        self.echo = echo or (lambda line: click.echo(line))
        self.total = 0
        self.done = 0
        self.last = time.monotonic()
        self.run_id = ""

    def __call__(self, event: Event) -> None:
        self.view(event)
        line = None
        with self.view.lock:
            if isinstance(event, RunStarted):
                self.total, self.done, self.run_id = event.total, event.done, event.run_id
                line = (f"run {event.run_id}: {event.total} boots planned"
                        + (f", {event.done} already recorded" if event.done else ""))
            elif isinstance(event, BootDone):
                if event.result.outcome is not Outcome.INFRA_ERROR:
                    self.done += 1
                if time.monotonic() - self.last >= self.every:
                    line = self.line()
            elif isinstance(event, HostChanged) and event.state.startswith("set aside"):
                line = f"run {self.run_id}: host {event.host} {event.state}"
        if line is not None:
            self.last = time.monotonic()
            self.echo(line)

    def line(self) -> str:
        o = self.view.outcomes
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        aside = [h for h, st in self.view.hosts.items() if st.startswith("set aside")]
        return (f"run {self.run_id}: {self.done}/{self.total} boots{share}, "
                f"{o['vcpu_offline']} vCPU offline, {o['boot_failure']} boot failures, "
                f"{o['infra_error']} infrastructure errors"
                + (f"; hosts set aside: {', '.join(sorted(aside))}" if aside else ""))


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.1f}%"


def result_table(summary: RunSummary, adaptive_cs: bool = False) -> Table:
    """One row per cell: counts, rates with 95% intervals, verdict. A cell adaptive stopping
    cut short shows its confidence sequence and its verdict read off it (as every report
    does); ``adaptive_cs`` is kept for old callers (the decisions say which cells)."""

    t = Table(title=f"{summary.matrix}  run {summary.run_id}", title_justify="left")
    for col in ("cell", "boots", "ok", "vCPU offline", "boot failure", "infra", "verdict"):
        t.add_column(col, justify="left" if col in ("cell", "verdict") else "right",
                     no_wrap=col == "cell")
    for cell in summary.cells:
        c = summary.counts.get(cell.id)
        if c is None:
            continue
        cols = []
        stopped = cell.id in summary.decisions
        for o in (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE):
            r = c.rate(o, cell.expect.confidence, sequential=stopped)
            text = f"{r.k} {_pct(r.value)} [{_pct(r.low)}-{_pct(r.high)}]" if r.n else "-"
            cols.append(f"[red]{text}[/]" if r.k else text)
        j = judge_cell(c, cell.expect, stopped)
        verdict: str = j.status
        if cell.id in summary.decisions:
            verdict += " (stopped early)"
        t.add_row(cell.id, str(c.n), str(c.ok), *cols,
                  f"[magenta]{c.infra_error}[/]" if c.infra_error else "0",
                  f"[{VERDICT_STYLE.get(j.status, '')}]{verdict}[/]")
    return t


@click.command(epilog=EXIT_HELP)
@click.argument("matrix", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--run-id", help="Id of the new run (default: <matrix>-<UTC time>-<hex>).")
@click.option("--resume", "resume", metavar="RUN_ID",
              help="Continue this run where it stopped (no boot lost or counted twice).")
@click.option("--join", "join", metavar="RUN_ID",
              help="Boot run RUN_ID together with other controllers (started the same way, "
                   "on this machine or others, on one database): created by the first, its "
                   "plan shared through the database.")
@click.option("--lease", "lease_s", type=click.FloatRange(min=0.5), default=15.0,
              show_default=True, metavar="SECONDS",
              help="With --join: a controller silent this long is presumed dead and its "
                   "boots are redone by the others.")
@click.option("--boots", type=click.IntRange(min=1, max=1_000_000),
              help="Boots per cell instead of the matrix's.")
@click.option("--time-scale", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Simulated hosts: 0 = as fast as possible, 1 = real boot durations.")
@click.option("--chunk", "chunk_size", type=click.IntRange(min=1), default=5,
              show_default=True, help="Consecutive boots of a cell given to a slot at once.")
@click.option("--max-per-host", type=click.IntRange(min=1),
              help="At most this many boots at once per host (default: its slots).")
@click.option("--adaptive/--no-adaptive", default=None,
              help="Stop a cell once decided (SPRT); default: as the matrix says.")
@click.option("--order-seed", type=int, help="Seed of the interleaved boot order.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes booting the run (hosts split among them).")
@click.option("--reports-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True,
              help="Results database (unless the lab names one) and run folders.")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the lab's, else REPORTS_DIR/<lab>.db).")
@click.option("--no-report", is_flag=True, help="Do not write the reports at the end.")
@click.option("--quiet", "-q", is_flag=True,
              help="No live display: a progress line now and then, and the summary.")
@click.option("--progress-every", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS",
              help="Without a terminal or with --quiet: a progress line this often.")
def run(matrix: Path, run_id: str | None, resume: str | None, join: str | None,
        lease_s: float, boots: int | None,
        time_scale: float, chunk_size: int, max_per_host: int | None,
        adaptive: bool | None, order_seed: int | None, workers: int, reports_dir: Path,
        db: str | None, no_report: bool, quiet: bool, progress_every: float) -> int:
    """Run MATRIX: boot every cell on its host's slots, record and classify every boot,
    and print the result table (Ctrl-C stops cleanly; resume with --resume RUN_ID)."""
    if run_id and resume:
        raise click.UsageError("give --run-id for a new run or --resume for an old one, "
                               "not both")
    if join and (run_id or resume):
        raise click.UsageError("--join RUN_ID names the run already: no --run-id or --resume")
    m = load_matrix(matrix)
    options = RunOptions(run_id=run_id, resume=resume, boots=boots, time_scale=time_scale,
                         chunk_size=chunk_size, order_seed=order_seed,
                         max_per_host=max_per_host, adaptive=adaptive,
                         reports_dir=reports_dir, db=parse_target(db) if db else None,
                         write_reports=not no_report,
                         workers=workers, share=join, lease_s=lease_s)
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)
    live_view = LiveView(console)
    plain = quiet or not console.is_terminal
    runner = Runner(m, options, on_event=ProgressLog(live_view, progress_every)
                    if plain else live_view)
    restore = _install_signals(runner, console)
    try:
        if plain:
            summary = runner.run()
        else:
            with Live(live_view, console=console, refresh_per_second=8, transient=False):
                summary = runner.run()
    finally:
        restore()
    return _print_summary(console, summary, matrix, live_view)


def _install_signals(runner: Runner, console: Console) -> Any:
    """First Ctrl-C or SIGTERM: stop handing out boots and finish cleanly; a second
    Ctrl-C interrupts at once (recorded boots stay; the boot under way is re-done)."""
    pressed = {"n": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        pressed["n"] += 1
        if pressed["n"] > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        console.print("[yellow]stopping: no new boots; the boots under way are abandoned "
                      "and cleaned up[/]")
        runner.stop()

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def _print_summary(console: Console, s: RunSummary, matrix: Path, view: LiveView) -> int:
    console.print(result_table(s, adaptive_cs=bool(s.decisions)))
    rate = s.booted / s.elapsed_s if s.elapsed_s > 0 else 0.0
    pace = (f"{rate:.0f} boots/s" if rate >= 1 else
            f"{s.elapsed_s / s.booted:.1f}s per boot" if s.booted else "no boot")
    console.print(f"{s.booted} boots recorded in {s.elapsed_s:.1f}s ({pace}); "
                  f"database {describe(s.db)}")
    if s.skipped:
        console.print(f"adaptive stopping: {len(s.decisions)} cells decided early, "
                      f"{s.skipped} boots saved (intervals of those cells are confidence "
                      "sequences, valid after the early stop)")
    for host, why in sorted(s.set_aside.items()):
        console.print(f"[red]host {host} set aside: {why}[/]")
    if s.reports:
        console.print("reports: " + ", ".join(str(p) for p in s.reports.values()))
    if s.status != "finished":
        console.print(f"[yellow]run {s.run_id} {s.status}: {s.missing} boots not recorded; "
                      f"continue with: harness run {matrix} --resume {s.run_id}[/]")
        return 130 if s.status == "interrupted" else 3
    failed = any(judge_cell(c, cell.expect, cell.id in s.decisions).status == "fail"
                 for cell in s.cells if (c := s.counts.get(cell.id)) is not None)
    return 1 if failed else 0
