"""The outcome of one boot, from what the loop saw plus the classifier's reading (pure).

Rules, in order:

1. An infrastructure error (libvirt refused, host unreachable, SSH login refused, disk
   full, ...) -> ``infra_error``; never a guest failure (house rule 6).
2. The guest never let us log in (panic on the console, reboot loop, domain stopped,
   no SSH within the boot timeout, a command hanging) -> ``boot_failure``; the reason is
   the classifier's panic title when the kernel printed one, else what the loop saw.
3. Logged in: ``/sys/devices/system/cpu/online`` is the authority. Any of the defined vCPUs
   missing -> ``vcpu_offline`` with the missing CPU ids; else ``ok``. dmesg findings and
   signatures are kept either way (they say *why*).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.classify.result import Classification
from harness.model import BootResult, Cell, Outcome


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str = ""
    offline_cpus: tuple[int, ...] = ()
    online_cpus: tuple[int, ...] | None = None


def _cpus(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    from harness.classify.cpulist import parse_cpu_list

    try:
        return parse_cpu_list(text)
    except ValueError:
        return None


def _fmt(cpus: tuple[int, ...]) -> str:
    from harness.classify.cpulist import format_cpu_list

    return format_cpu_list(cpus)


def decide(*, expected_vcpus: int, infra: str | None = None, failure: str | None = None,
           classification: Classification | None = None, online: str | None = None,
           present: str | None = None) -> Decision:
    """``infra``: why the lab failed; ``failure``: why the guest never became usable;
    ``online``/``present``: the raw sysfs texts read over SSH (None when not read)."""
    if infra is not None:
        return Decision(Outcome.INFRA_ERROR, infra)
    if failure is not None:
        panic = classification.panic if classification is not None else None
        reason = f"kernel panic: {panic}" if panic else failure
        if panic and not failure.startswith("kernel panic"):
            reason = f"{reason} ({failure})"
        offline = classification.offline_cpus if classification is not None else ()
        return Decision(Outcome.BOOT_FAILURE, reason, offline_cpus=tuple(offline))
    online_cpus = _cpus(online)
    if online_cpus is None:
        return Decision(Outcome.BOOT_FAILURE,
                        f"cannot read the online CPU list: {online!r}")
    missing = tuple(c for c in range(expected_vcpus) if c not in set(online_cpus))
    if missing:
        n = expected_vcpus - len(missing)
        reason = f"CPU {_fmt(missing)} offline ({n}/{expected_vcpus} online)"
        present_cpus = _cpus(present)
        if present_cpus is not None and len(present_cpus) < expected_vcpus:
            reason += f"; only {len(present_cpus)} present"
        return Decision(Outcome.VCPU_OFFLINE, reason, offline_cpus=missing,
                        online_cpus=online_cpus)
    return Decision(Outcome.OK, "", online_cpus=online_cpus)


def build_result(run_id: str, cell: Cell, index: int, attempt: int, decision: Decision,
                 cls: Classification | None, timings: dict[str, float],
                 artifacts: dict[str, str], collected: dict[str, str],
                 hook: dict[str, Any], earlier: list[str], domain: str) -> BootResult:
    """The ``BootResult`` of one boot (pure): the decision, the classifier's evidence,
    timestamps and the durations between them."""
    last = cls.last_boot if cls is not None else None
    latency = None
    if last is not None and last.bringup_start_s is not None and last.bringup_end_s is not None:
        latency = round(last.bringup_end_s - last.bringup_start_s, 6)
    extra: dict[str, Any] = {"domain": domain, "durations": durations(timings)}
    if hook:
        extra["hook"] = hook
    if earlier:
        extra["earlier_attempts"] = list(earlier)
    if last is not None and last.slowest_cpu_s is not None:
        extra["slowest_cpu_s"] = last.slowest_cpu_s
    for key in ("present", "nproc"):
        if key in collected:
            extra[key] = collected[key].strip()
    release = collected.get("uname_r", "").strip() or (
        last.kernel_release if last is not None else None)
    return BootResult(
        run_id=run_id, cell_id=cell.id, index=index, outcome=decision.outcome,
        reason=decision.reason, host=cell.host, guest=cell.guest, vcpus=cell.vcpus,
        attempt=attempt, offline_cpus=decision.offline_cpus,
        online_cpus=decision.online_cpus,
        cpus_brought_up=cls.cpus_brought_up if cls is not None else None,
        kernel_release=release or None,
        signatures=cls.signature_list() if cls is not None else (),
        findings=cls.findings if cls is not None else (),
        timings=tuple(sorted(timings.items(), key=lambda kv: kv[1])),
        bringup_latency_s=latency,
        slowest_cpu=last.slowest_cpu if last is not None else None,
        artifacts=tuple(sorted(artifacts.items())),
        extra=tuple(sorted(extra.items())),
    )


# duration name -> (from event, to event)
DURATIONS = {
    "define_to_start": ("define", "start"),
    "start_to_first_console": ("start", "first_console"),
    "start_to_ssh": ("start", "ssh_up"),
    "collect": ("ssh_up", "collected"),
    "total": ("define", "stopped"),
}


def durations(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(timings[b] - timings[a], 3) for name, (a, b) in DURATIONS.items()
            if a in timings and b in timings}
