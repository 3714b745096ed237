"""Stream kernel output, line by line, into per-boot reports (pure; bounded memory).

Only what a report needs is kept: per boot the state of each CPU id seen (ids up to
``MAX_CPU_ID``; a larger "CPU id" is no CPU of an arm64 guest and is only counted), the
bring-up timing, at most ``MAX_FINDINGS_PER_KIND`` findings of each kind and
``MAX_TITLES`` distinct signature titles (the events of further titles are counted under
one "other titles" signature: counts stay exact), texts cut to ``MAX_TEXT`` characters.
At most two boots are held at a time: a finished boot is handed to ``on_boot`` at once.
Whatever the input, memory stays bounded (issue 14: a guest's output is not ours).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness.classify import rules
from harness.classify.prefix import clean
from harness.classify.result import BootReport, PsciError, SignatureCount
from harness.model import Finding, Outcome

# a fatal marker later than this uptime is a runtime crash, not a failed boot
# (the harness's own boot timeout defaults to 300 s: a boot is over by then either way)
BOOT_WINDOW_S = 300.0
MAX_FINDINGS_PER_KIND = 20
MAX_PSCI_ERRORS = 256
MAX_TEXT = 500  # characters of a message kept in a Finding
MAX_TITLE = 200  # characters of a signature title
MAX_TITLES = 100  # distinct signature titles per boot (and per text)
OTHER_KIND = "other"
OTHER_TITLE = "other signature titles (more than the classifier keeps)"
MAX_CPU_ID = 65535  # as harness.classify.cpulist (Linux NR_CPUS tops out at 8192 on arm64)
MAX_COUNT_DIGITS = 9  # "Brought up N CPUs": more digits is not a count


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
    timestamps_backwards: bool = False  # bring-up times went back: no latency from them
    cpu_ids_ignored: int = 0  # events naming a CPU id above MAX_CPU_ID

    def add_finding(self, ev: rules.Event, lineno: int, message: str) -> None:
        n = self.kind_counts.get(ev.kind, 0)
        self.kind_counts[ev.kind] = n + 1
        if n < MAX_FINDINGS_PER_KIND:
            self.findings.append(Finding(kind=ev.kind, line=lineno, text=message[:MAX_TEXT],
                                         cpu=ev.cpu, errno=ev.errno))
        if ev.title:
            count_title(self.sig_counts, ev.kind, ev.title[:MAX_TITLE], 1)


def count_title(counts: dict[tuple[str, str], int], kind: str, title: str, n: int) -> None:
    """Add ``n`` events of a title, keeping at most ``MAX_TITLES`` distinct titles (the
    rest are counted under one "other" title, so totals stay exact)."""
    key = (kind, title)
    if key not in counts and len(counts) >= MAX_TITLES:
        key = (OTHER_KIND, OTHER_TITLE)
    counts[key] = counts.get(key, 0) + n


class Scanner:
    """Events in, per-boot state out (``scan`` drives it over the lines). A finished boot
    is held back until the next one shows content (only then is it known not to be the
    last boot of the text), then handed to ``on_boot(state, last=False)``."""

    def __init__(self, on_boot: Callable[[BootState, bool], None] | None = None) -> None:
        self.lineno = 0
        self.done: list[BootState] = []  # without on_boot: every boot (small texts, tests)
        self.pending: BootState | None = None
        self.on_boot = on_boot
        self.cur = BootState(first_line=1)

    def _new_boot(self, by_marker: bool) -> BootState:
        if self.cur.content or self.cur.by_marker:
            self._finished(self.cur)
        self.cur = BootState(first_line=self.lineno, by_marker=by_marker)
        return self.cur

    def _finished(self, b: BootState) -> None:
        if self.on_boot is None:
            self.done.append(b)
            return
        if self.pending is not None:
            self.on_boot(self.pending, False)
        self.pending = b

    def finish(self) -> None:
        """Hand the remaining boots to ``on_boot``, the last one with ``last=True``."""
        assert self.on_boot is not None
        if self.cur.content or self.cur.by_marker or self.pending is None:
            if self.pending is not None:
                self.on_boot(self.pending, False)
            self.on_boot(self.cur, True)
        else:
            self.on_boot(self.pending, True)
        self.pending = None

    def _event(self, ev: rules.Event, message: str, uptime: float | None) -> None:
        b = self.cur
        kind = ev.kind
        if kind == "boot_start":
            self._new_boot(True)
            return
        if kind == "linux_version":
            if not (b.by_marker and b.kernel_release is None and not b.content):
                b = self._new_boot(True)
            b.kernel_release = ev.value[:MAX_TEXT] if ev.value else ev.value
            return
        b.content = True
        if kind == "bringup_start":
            b.in_bringup, b.bringup_start, b.last_event_ts = True, uptime, uptime
            return
        if ev.cpu is not None and ev.cpu > MAX_CPU_ID:
            b.cpu_ids_ignored += 1  # no CPU of a guest: counted, not tracked
            return
        if kind in ("brought_up", "smp_total"):
            text = ev.value or "0"
            count = int(text) if len(text) <= MAX_COUNT_DIGITS else 10 ** MAX_COUNT_DIGITS
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
                b.panic = ev.value[:MAX_TEXT] if ev.value else ev.value
        if kind in rules.FATAL_KINDS and (uptime is None or uptime < BOOT_WINDOW_S):
            b.fatal_in_window = True
        b.add_finding(ev, self.lineno, message)

    @staticmethod
    def _timing(b: BootState, cpu: int, uptime: float | None, *, booted: bool) -> None:
        if b.bringup_done or uptime is None:
            return
        prev = b.last_event_ts
        if b.timestamps_backwards:
            return
        if prev is not None and uptime < prev:  # a clock that went back: no latency
            b.timestamps_backwards = True
            b.bringup_end = b.slowest_gap = b.slowest_cpu = None
            return
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


def scan(lines: Iterable[str], on_boot: Callable[[BootState, bool], None] | None = None
         ) -> tuple[list[BootState], int]:
    """All the boots of a text (at least one) and its number of lines. With ``on_boot``,
    each boot is handed to it as soon as it is known (``last`` for the final one) and
    the list returned is empty: memory stays bounded however many boots the text has."""
    s = Scanner(on_boot)
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
    if on_boot is not None:
        s.finish()
        return [], lineno
    return s.boots(), lineno


def boot_report(b: BootState, *, offline: tuple[int, ...], verdict: Outcome,
                extra_sigs: tuple[SignatureCount, ...] = ()) -> BootReport:
    """Freeze one boot's state (offline CPUs and verdict decided by ``verdict.py``)."""
    counts = dict(b.sig_counts)
    for sc in extra_sigs:
        count_title(counts, sc.kind, sc.title, sc.count)
    sigs = tuple(SignatureCount(kind=k, title=t, count=c) for (k, t), c in counts.items())
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
        timestamps_backwards=b.timestamps_backwards,
    )
