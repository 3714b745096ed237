"""From scanned boots to a verdict, with the cross-checks against the domain (pure).

Rules (docs/classify.md explains why):

* ``boot_failure``: a fatal marker (kernel panic, root fs mount failure) inside the boot
  window (uptime below ``BOOT_WINDOW_S``, or no uptime shown).
* ``vcpu_offline``: otherwise, some CPU is offline: a bring-up failure not followed by that
  CPU booting later, fewer CPUs brought up than ``expected_cpus``, or (last boot only) a CPU
  below ``expected_cpus`` missing from the ``online`` list read from sysfs.
* ``ok``: otherwise. Oopses, WARNINGs, BUGs, lockups and stalls the kernel survives are
  signatures, not a verdict.

The sysfs ``online`` list is authoritative for the last boot: a CPU it lists is online even
when dmesg said it failed earlier (a later hotplug can succeed).
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.classify.dmesg import (
    MAX_CPU_ID,
    MAX_PSCI_ERRORS,
    BootState,
    boot_report,
    count_title,
    scan,
)
from harness.classify.result import BootReport, Classification, PsciError, SignatureCount
from harness.model import Finding, Outcome

VERDICT_RANK = {Outcome.OK: 0, Outcome.VCPU_OFFLINE: 1, Outcome.BOOT_FAILURE: 2}
MAX_TOTAL_FINDINGS_PER_KIND = 50
MAX_BOOTS_KEPT = 100  # boots of one text kept whole (the first 99 and the last)
MISSING_TITLE = "vCPU missing without a kernel message"


def _offline(b: BootState, expected: int | None, online: tuple[int, ...] | None,
             last: bool) -> tuple[tuple[int, ...], bool]:
    """(offline CPU ids, whether some CPUs are missing whose ids are unknown). With
    ``expected``, an id at or above it is no CPU of this guest and is left out."""
    failed = {cpu for cpu, bad in b.cpu_state.items()
              if bad and (expected is None or cpu < expected)}
    if last and online is not None:
        universe = set(range(expected)) if expected is not None else (
            set(range(max(online) + 1)) if online else set())
        return tuple(sorted((universe | failed) - set(online))), False
    count = b.brought_up if b.brought_up is not None else b.smp_total
    unknown = False
    if expected is not None and count is not None and count < expected:
        booted = {cpu for cpu, bad in b.cpu_state.items() if not bad} | {0}
        if len(booted) == count:  # every secondary that came up said so: the rest is missing
            failed |= set(range(expected)) - booted
        unknown = len(failed) < expected - count
    return tuple(sorted(failed)), unknown


def _verdict(b: BootState, offline: tuple[int, ...], unknown_missing: bool) -> Outcome:
    if b.fatal_in_window:
        return Outcome.BOOT_FAILURE
    if offline or unknown_missing:
        return Outcome.VCPU_OFFLINE
    return Outcome.OK


def classify_lines(lines: Iterable[str], *, expected_cpus: int | None = None,
                   online: str | None = None) -> Classification:
    """Classify kernel output given line by line (streaming: lines are not kept, and the
    memory held does not grow with the text: see ``dmesg.py`` and ``MAX_BOOTS_KEPT``).

    ``expected_cpus``: the vCPU count the domain was defined with. ``online``: the guest's
    ``/sys/devices/system/cpu/online`` (kernel list syntax, e.g. ``0-2,4-7``) read after
    the last boot of the text. Raises ``ValueError`` for a malformed ``online`` list or an
    ``expected_cpus`` below 0 or above ``MAX_CPU_ID + 1``, before reading any line.
    """
    from harness.classify.cpulist import parse_cpu_list

    if expected_cpus is not None and not 0 <= expected_cpus <= MAX_CPU_ID + 1:
        raise ValueError(f"expected_cpus must be 0 to {MAX_CPU_ID + 1}, not {expected_cpus}")
    online_ids = parse_cpu_list(online) if online is not None else None
    merger = Merger()

    def on_boot(b: BootState, last: bool) -> None:
        offline, unknown = _offline(b, expected_cpus, online_ids, last)
        explained = {cpu for cpu, bad in b.cpu_state.items() if bad}
        extra: tuple[SignatureCount, ...] = ()
        if unknown or set(offline) - explained:
            extra = (SignatureCount(kind="cpus_missing", title=MISSING_TITLE, count=1),)
        beyond = 0 if expected_cpus is None else sum(
            1 for cpu, bad in b.cpu_state.items() if bad and cpu >= expected_cpus)
        merger.add(boot_report(b, offline=offline, verdict=_verdict(b, offline, unknown),
                               extra_sigs=extra), ignored_cpu_ids=b.cpu_ids_ignored + beyond)

    _, nlines = scan(lines, on_boot)
    return merger.result(extra={"lines": nlines})


def classify(text: str, *, expected_cpus: int | None = None,
             online: str | None = None) -> Classification:
    """Classify a whole text (see ``classify_lines``)."""
    return classify_lines(_split(text), expected_cpus=expected_cpus, online=online)


def _split(text: str) -> Iterable[str]:
    start = 0
    n = len(text)
    while start < n:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


class Merger:
    """The whole text, boot by boot: the worst verdict, the first panic, the union of
    offline CPUs and PSCI errors, summed signature counts. Bounded: the first
    ``MAX_BOOTS_KEPT - 1`` boots and the last are kept whole, the others only counted;
    at most ``MAX_PSCI_ERRORS`` distinct PSCI errors and ``MAX_TITLES`` titles."""

    def __init__(self) -> None:
        self.kept: list[BootReport] = []
        self.last: BootReport | None = None
        self.omitted = 0
        self.sigs: dict[tuple[str, str], int] = {}
        self.psci: list[PsciError] = []
        self.seen_psci: set[tuple[int, int]] = set()
        self.psci_omitted = 0
        self.findings: list[Finding] = []
        self.per_kind: dict[str, int] = {}
        self.offline: set[int] = set()
        self.panic: str | None = None
        self.verdict = Outcome.OK
        self.brought_up: int | None = None
        self.ignored_cpu_ids = 0

    def add(self, r: BootReport, *, ignored_cpu_ids: int = 0) -> None:
        if self.last is not None:
            if len(self.kept) < MAX_BOOTS_KEPT - 1:
                self.kept.append(self.last)
            else:
                self.omitted += 1
        self.last = r
        self.ignored_cpu_ids += ignored_cpu_ids
        for sc in r.signatures:
            count_title(self.sigs, sc.kind, sc.title, sc.count)
        for p in r.psci_errors:
            if (p.cpu, p.errno) in self.seen_psci:
                continue
            if len(self.psci) >= MAX_PSCI_ERRORS:
                self.psci_omitted += 1  # distinct or not: not told apart beyond the cap
                continue
            self.seen_psci.add((p.cpu, p.errno))
            self.psci.append(p)
        for f in r.findings:
            n = self.per_kind.get(f.kind, 0)
            self.per_kind[f.kind] = n + 1
            if n < MAX_TOTAL_FINDINGS_PER_KIND:
                self.findings.append(f)
        self.offline.update(r.offline_cpus)  # ids <= MAX_CPU_ID: at most 65,536 of them
        if self.panic is None:
            self.panic = r.panic
        if VERDICT_RANK[r.verdict] > VERDICT_RANK[self.verdict]:
            self.verdict = r.verdict
        if r.cpus_brought_up is not None:
            self.brought_up = r.cpus_brought_up

    def result(self, extra: dict[str, object] | None = None) -> Classification:
        boots = [*self.kept, *([self.last] if self.last is not None else [])]
        more = dict(extra or {})
        if self.ignored_cpu_ids:
            more["cpu_ids_ignored"] = self.ignored_cpu_ids
        return Classification(
            boots=tuple(boots),
            cpus_brought_up=self.brought_up,
            offline_cpus=tuple(sorted(self.offline)),
            psci_errors=tuple(self.psci),
            panic=self.panic,
            signatures=tuple(SignatureCount(kind=k, title=t, count=c)
                             for (k, t), c in self.sigs.items()),
            verdict=self.verdict,
            findings=tuple(self.findings),
            extra=more,
            boots_omitted=self.omitted,
            psci_omitted=self.psci_omitted,
        )


def merge(reports: list[BootReport], extra: dict[str, object] | None = None) -> Classification:
    """The whole text from its boots (see ``Merger``)."""
    m = Merger()
    for r in reports:
        m.add(r)
    return m.result(extra)
