"""Stream kernel output, line by line, into per-boot reports (pure; bounded memory).

Only what a report needs is kept: per boot the state of each CPU id seen, the bring-up
timing, at most ``MAX_FINDINGS_PER_KIND`` findings of each kind (counts are kept in full),
and the signature counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.classify import rules
from harness.classify.prefix import clean
from harness.classify.result import BootReport, PsciError, SignatureCount
from harness.model import Finding

# a fatal marker later than this uptime is a runtime crash, not a failed boot
# (the harness's own boot timeout defaults to 300 s: a boot is over by then either way)
BOOT_WINDOW_S = 300.0
MAX_FINDINGS_PER_KIND = 20
MAX_PSCI_ERRORS = 256
MAX_TEXT = 500  # characters of a message kept in a Finding


@dataclass
class BootState:
    """The mutable state of one boot while its lines stream by."""

    first_line: int
    by_marker: bool = False  # started at "Booting Linux" / "Linux version"
    kernel_release: str | None = None
    content: bool = False  # anything recognised yet (an empty implicit boot is dropped)
    cpu_state: dict[int, bool] = field(default_factory=dict)  # cpu -> failed? (last word)
    brought_up: int | None = None
    smp_total: int | None = None
    psci: list[PsciError] = field(default_factory=list)
    panic: str | None = None
    panic_open: bool = False  # a panic was reported; its "end Kernel panic" is no news
    fatal_in_window: bool = False
    findings: list[Finding] = field(default_factory=list)
    kind_counts: dict[str, int] = field(default_factory=dict)
    sig_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    # bring-up timing
    in_bringup: bool = False
    bringup_done: bool = False
    bringup_start: float | None = None
    last_event_ts: float | None = None
    bringup_end: float | None = None
    slowest_cpu: int | None = None
    slowest_gap: float | None = None

    def add_finding(self, ev: rules.Event, lineno: int, message: str) -> None:
        n = self.kind_counts.get(ev.kind, 0)
        self.kind_counts[ev.kind] = n + 1
        if n < MAX_FINDINGS_PER_KIND:
            self.findings.append(Finding(kind=ev.kind, line=lineno, text=message[:MAX_TEXT],
                                         cpu=ev.cpu, errno=ev.errno))
        if ev.title:
            key = (ev.kind, ev.title)
            self.sig_counts[key] = self.sig_counts.get(key, 0) + 1


class Scanner:
    """Events in, per-boot state out (``scan`` drives it over the lines)."""

    def __init__(self) -> None:
        self.lineno = 0
        self.done: list[BootState] = []
        self.cur = BootState(first_line=1)

    def _new_boot(self, by_marker: bool) -> BootState:
        if self.cur.content or self.cur.by_marker:
            self.done.append(self.cur)
        self.cur = BootState(first_line=self.lineno, by_marker=by_marker)
        return self.cur

    def _event(self, ev: rules.Event, message: str, uptime: float | None) -> None:
        b = self.cur
        kind = ev.kind
        if kind == "boot_start":
            self._new_boot(True)
            return
        if kind == "linux_version":
            if not (b.by_marker and b.kernel_release is None and not b.content):
                b = self._new_boot(True)
            b.kernel_release = ev.value
            return
        b.content = True
        if kind == "bringup_start":
            b.in_bringup, b.bringup_start, b.last_event_ts = True, uptime, uptime
            return
        if kind in ("brought_up", "smp_total"):
            count = int(ev.value or 0)
            if kind == "brought_up":
                b.brought_up = count
            else:
                b.smp_total = count
            b.in_bringup, b.bringup_done = False, True
            return
        if kind == "booted_secondary":
            assert ev.cpu is not None
            b.cpu_state[ev.cpu] = False
            self._timing(b, ev.cpu, uptime, booted=True)
            return
        if kind == "panic_end":
            if b.panic_open:
                return
            kind = "panic"
            ev = rules.Event("panic", ev.title, value=ev.value)
        if kind in rules.CPU_FAILURE_KINDS or (kind == "panic" and ev.cpu is not None):
            assert ev.cpu is not None
            b.cpu_state[ev.cpu] = True
            self._timing(b, ev.cpu, uptime, booted=False)
            if kind == "psci_failed_boot" and len(b.psci) < MAX_PSCI_ERRORS:
                b.psci.append(PsciError(cpu=ev.cpu, errno=ev.errno if ev.errno is not None
                                        else 0))
        if kind == "panic":
            b.panic_open = True
            if b.panic is None:
                b.panic = ev.value
        if kind in rules.FATAL_KINDS and (uptime is None or uptime < BOOT_WINDOW_S):
            b.fatal_in_window = True
        b.add_finding(ev, self.lineno, message)

    @staticmethod
    def _timing(b: BootState, cpu: int, uptime: float | None, *, booted: bool) -> None:
        if b.bringup_done or uptime is None:
            return
        prev = b.last_event_ts
        b.last_event_ts = uptime
        if not booted:
            return
        b.bringup_end = uptime
        if prev is None:
            return
        gap = uptime - prev
        if b.slowest_gap is None or gap > b.slowest_gap:
            b.slowest_gap, b.slowest_cpu = gap, cpu

    def boots(self) -> list[BootState]:
        if self.done and not (self.cur.content or self.cur.by_marker):
            return list(self.done)
        return [*self.done, self.cur]


def scan(lines: Iterable[str]) -> tuple[list[BootState], int]:
    """All the boots of a text (at least one) and its number of lines."""
    s = Scanner()
    prefilter = rules.PREFILTER.search
    match = rules.match
    lineno = 0
    for lineno, raw in enumerate(lines, 1):  # the hot loop of a 100 MB log: keep it lean
        if prefilter(raw) is None:
            continue
        message, uptime = clean(raw)
        if message:
            ev = match(message)
            if ev is not None:
                s.lineno = lineno
                s._event(ev, message, uptime)
    s.lineno = lineno
    return s.boots(), lineno


def boot_report(b: BootState, *, offline: tuple[int, ...], verdict: str,
                extra_sigs: tuple[SignatureCount, ...] = ()) -> BootReport:
    """Freeze one boot's state (offline CPUs and verdict decided by ``verdict.py``)."""
    sigs = tuple(SignatureCount(k, t, c) for (k, t), c in b.sig_counts.items()) + extra_sigs
    return BootReport(
        first_line=b.first_line,
        kernel_release=b.kernel_release,
        findings=tuple(b.findings),
        cpus_brought_up=b.brought_up if b.brought_up is not None else b.smp_total,
        offline_cpus=offline,
        psci_errors=tuple(b.psci),
        panic=b.panic,
        signatures=sigs,
        verdict=verdict,
        bringup_start_s=b.bringup_start,
        bringup_end_s=b.bringup_end,
        slowest_cpu=b.slowest_cpu,
        slowest_cpu_s=round(b.slowest_gap, 6) if b.slowest_gap is not None else None,
    )
