"""A Classification as JSON-ready data or as a short human summary (pure)."""

from __future__ import annotations

from typing import Any

from harness.classify.cpulist import format_cpu_list, parse_cpu_list
from harness.classify.result import BootReport, Classification, PsciError, SignatureCount
from harness.model import Finding


def _psci(errors: tuple[PsciError, ...]) -> list[dict[str, int]]:
    return [{"cpu": p.cpu, "errno": p.errno} for p in errors]


def _sigs(sigs: tuple[SignatureCount, ...]) -> list[dict[str, Any]]:
    return [{"kind": s.kind, "title": s.title, "count": s.count} for s in sigs]


def _finding(f: Finding) -> dict[str, Any]:
    return {"kind": f.kind, "cpu": f.cpu, "errno": f.errno, "line": f.line, "text": f.text}


def boot_dict(b: BootReport) -> dict[str, Any]:
    return {
        "first_line": b.first_line,
        "kernel_release": b.kernel_release,
        "cpus_brought_up": b.cpus_brought_up,
        "offline_cpus": list(b.offline_cpus),
        "psci_errors": _psci(b.psci_errors),
        "panic": b.panic,
        "signatures": _sigs(b.signatures),
        "verdict": b.verdict,
        "bringup_start_s": b.bringup_start_s,
        "bringup_end_s": b.bringup_end_s,
        "bringup_latency_s": bringup_latency(b),
        "slowest_cpu": b.slowest_cpu,
        "slowest_cpu_s": b.slowest_cpu_s,
        "timestamps_backwards": b.timestamps_backwards,
        "findings": [_finding(f) for f in b.findings],
    }


def bringup_latency(b: BootReport) -> float | None:
    """Seconds from ``smp: Bringing up secondary CPUs`` to the last secondary booted
    (None when not visible, or when the timestamps went back: never negative)."""
    if b.bringup_start_s is None or b.bringup_end_s is None or b.timestamps_backwards:
        return None
    if b.bringup_end_s < b.bringup_start_s:
        return None
    return round(b.bringup_end_s - b.bringup_start_s, 6)


def to_dict(c: Classification, file: str) -> dict[str, Any]:
    """The ``harness classify --json`` object of one file."""
    return {
        "file": file,
        "boots": [boot_dict(b) for b in c.boots],
        "cpus_brought_up": c.cpus_brought_up,
        "offline_cpus": list(c.offline_cpus),
        "psci_errors": _psci(c.psci_errors),
        "panic": c.panic,
        "signatures": _sigs(c.signatures),
        "verdict": c.verdict,
        "boots_total": c.boots_total,
        "boots_omitted": c.boots_omitted,
        "psci_errors_omitted": c.psci_omitted,
        "cpu_ids_ignored": c.extra.get("cpu_ids_ignored", 0),
    }


MAX_SHOWN_RANGES = 32  # of a CPU list in the text summary


def cpu_list_text(cpus: tuple[int, ...]) -> str:
    """``0-2,4`` shortened to its first ``MAX_SHOWN_RANGES`` ranges ("and N more")."""
    parts = format_cpu_list(cpus).split(",")
    if len(parts) <= MAX_SHOWN_RANGES:
        return ",".join(parts)
    shown = ",".join(parts[:MAX_SHOWN_RANGES])
    n_shown = len(parse_cpu_list(shown))
    return f"{shown} and {len(cpus) - n_shown} more ({len(cpus)} in all)"


def summary(c: Classification, file: str) -> str:
    """A few readable lines: verdict, CPUs, panic, signatures, bring-up timing."""
    nboots = c.boots_total
    head = f"{file}: {c.verdict}"
    if nboots > 1:
        head += f" ({nboots} boots, worst shown)"
    lines = [head]
    last = c.last_boot
    if last is not None and last.kernel_release:
        lines.append(f"  kernel: {last.kernel_release}")
    if c.cpus_brought_up is not None:
        lines.append(f"  CPUs brought up: {c.cpus_brought_up}")
    if c.offline_cpus:
        lines.append(f"  offline CPUs: {cpu_list_text(c.offline_cpus)}")
    if c.psci_errors:
        errs = ", ".join(f"CPU{p.cpu} ({p.errno})" for p in c.psci_errors[:8])
        n_more = len(c.psci_errors) - 8 + c.psci_omitted
        more = f" and {n_more} more" if n_more > 0 else ""
        lines.append(f"  PSCI CPU_ON errors: {errs}{more}")
    if c.panic:
        lines.append(f"  panic: {c.panic}")
    if last is not None:
        lat = bringup_latency(last)
        if lat is not None:
            slow = ""
            if last.slowest_cpu is not None and last.slowest_cpu_s is not None:
                slow = f", slowest CPU{last.slowest_cpu} {last.slowest_cpu_s:.3f} s"
            lines.append(f"  secondary bring-up: {lat:.3f} s{slow}")
        elif last.timestamps_backwards:
            lines.append("  secondary bring-up: not measured (the timestamps went back)")
    if c.extra.get("cpu_ids_ignored"):
        lines.append(f"  {c.extra['cpu_ids_ignored']} failed CPU ids named no CPU of the "
                     "guest (at or above the vCPU count, or above 65535): counted, not listed")
    for s in c.signatures:
        lines.append(f"  {s.count:>5} x {s.title}")
    return "\n".join(lines)
