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

from harness.classify.dmesg import BootState, boot_report, scan
from harness.classify.result import BootReport, Classification, PsciError, SignatureCount
from harness.model import Finding

VERDICT_RANK = {"ok": 0, "vcpu_offline": 1, "boot_failure": 2}
MAX_TOTAL_FINDINGS_PER_KIND = 50
MISSING_TITLE = "vCPU missing without a kernel message"


def _offline(b: BootState, expected: int | None, online: tuple[int, ...] | None,
             last: bool) -> tuple[tuple[int, ...], bool]:
    """(offline CPU ids, whether some CPUs are missing whose ids are unknown)."""
    failed = {cpu for cpu, bad in b.cpu_state.items() if bad}
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


def _verdict(b: BootState, offline: tuple[int, ...], unknown_missing: bool) -> str:
    if b.fatal_in_window:
        return "boot_failure"
    if offline or unknown_missing:
        return "vcpu_offline"
    return "ok"


def classify_lines(lines: Iterable[str], *, expected_cpus: int | None = None,
                   online: str | None = None) -> Classification:
    """Classify kernel output given line by line (streaming: lines are not kept).

    ``expected_cpus``: the vCPU count the domain was defined with. ``online``: the guest's
    ``/sys/devices/system/cpu/online`` (kernel list syntax, e.g. ``0-2,4-7``) read after
    the last boot of the text. Raises ``ValueError`` for a malformed ``online`` list or a
    negative ``expected_cpus``, before reading any line.
    """
    from harness.classify.cpulist import parse_cpu_list

    if expected_cpus is not None and expected_cpus < 0:
        raise ValueError(f"expected_cpus must be 0 or more, not {expected_cpus}")
    online_ids = parse_cpu_list(online) if online is not None else None
    states, nlines = scan(lines)
    reports: list[BootReport] = []
    for i, b in enumerate(states):
        last = i == len(states) - 1
        offline, unknown = _offline(b, expected_cpus, online_ids, last)
        explained = {cpu for cpu, bad in b.cpu_state.items() if bad}
        extra: tuple[SignatureCount, ...] = ()
        if unknown or set(offline) - explained:
            extra = (SignatureCount("cpus_missing", MISSING_TITLE, 1),)
        reports.append(boot_report(b, offline=offline, verdict=_verdict(b, offline, unknown),
                                   extra_sigs=extra))
    return merge(reports, extra={"lines": nlines})


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


def merge(reports: list[BootReport], extra: dict[str, object] | None = None) -> Classification:
    """The whole text: union over boots (the worst verdict, the first panic)."""
    sigs: dict[tuple[str, str], int] = {}
    psci: list[PsciError] = []
    seen_psci: set[tuple[int, int]] = set()
    findings: list[Finding] = []
    per_kind: dict[str, int] = {}
    offline: set[int] = set()
    panic: str | None = None
    verdict = "ok"
    brought_up: int | None = None
    for r in reports:
        for s in r.signatures:
            sigs[(s.kind, s.title)] = sigs.get((s.kind, s.title), 0) + s.count
        for p in r.psci_errors:
            if (p.cpu, p.errno) not in seen_psci:
                seen_psci.add((p.cpu, p.errno))
                psci.append(p)
        for f in r.findings:
            n = per_kind.get(f.kind, 0)
            per_kind[f.kind] = n + 1
            if n < MAX_TOTAL_FINDINGS_PER_KIND:
                findings.append(f)
        offline.update(r.offline_cpus)
        if panic is None:
            panic = r.panic
        if VERDICT_RANK[r.verdict] > VERDICT_RANK[verdict]:
            verdict = r.verdict
        if r.cpus_brought_up is not None:
            brought_up = r.cpus_brought_up
    return Classification(
        boots=tuple(reports),
        cpus_brought_up=brought_up,
        offline_cpus=tuple(sorted(offline)),
        psci_errors=tuple(psci),
        panic=panic,
        signatures=tuple(SignatureCount(k, t, c) for (k, t), c in sigs.items()),
        verdict=verdict,
        findings=tuple(findings),
        extra=dict(extra or {}),
    )
