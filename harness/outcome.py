"""The outcome of one boot, from its evidence (pure: ``judge(evidence) -> BootResult``).

Rules, in order:

1. An infrastructure error the loop saw (libvirt refused, host unreachable, SSH login
   refused, disk full, ...) -> ``infra_error``; never a guest failure (house rule 6).
2. The guest never let us log in (panic on the console, reboot loop, domain stopped, no
   SSH within the boot timeout) -> ``boot_failure``; the reason is the classifier's panic
   title when the kernel printed one, else what the loop saw.
3. A guest command that did not finish: the SSH session went away under it -> the guest's
   fault (``boot_failure``) only when its console shows it failing, else the link's or
   controller's (``infra_error``, retried); no exit status within the command timeout ->
   ``boot_failure`` (the guest stopped answering).
4. ``/sys/devices/system/cpu/online`` is the authority, and only when it was read: exit 0,
   not cut, not empty, and a CPU list. Otherwise -> ``boot_failure`` with
   ``collection failed: online: exit 1: Permission denied`` (or ``empty answer``, ``not a
   CPU list: ...``); the text stays in the evidence and the result says so.
5. Read: any CPU the domain defines missing from it -> ``vcpu_offline`` with the missing
   ids; else ``ok``. dmesg findings and signatures are kept either way (they say *why*).

Nothing a guest prints can raise from here: every parse of guest text is guarded, every
number is bounded by the parsers (``classify/cpulist.py``, ``classify/rules.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.classify.cpulist import format_cpu_list, parse_cpu_list
from harness.classify.result import Classification
from harness.collect.console import watch
from harness.evidence import BootEvidence, CommandEvidence, CommandFault, first_line
from harness.model import BootResult, Cell, Outcome

Classifier = Callable[..., Classification]

# what the result keeps of a guest text it could not use (characters)
SHOWN = 200


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str = ""
    offline_cpus: tuple[int, ...] = ()
    online_cpus: tuple[int, ...] | None = None


@dataclass(frozen=True)
class CpuList:
    """A CPU list read from the guest: ``cpus`` when usable, else ``problem``."""

    cpus: tuple[int, ...] | None
    problem: str = ""


def read_cpu_list(cmd: CommandEvidence | str | None, name: str = "online") -> CpuList:
    """The CPU list a command printed, or why it cannot be used (pure, never raises).
    A plain string stands for the output of a command that exited 0."""
    if cmd is None:
        return CpuList(None, f"{name}: not collected")
    if isinstance(cmd, str):
        cmd = CommandEvidence(name, "", 0, cmd)
    if not cmd.succeeded:
        return CpuList(None, cmd.failure())
    if cmd.stdout_truncated:
        return CpuList(None, f"{cmd.name}: answer cut at {len(cmd.stdout)} characters")
    if not cmd.stdout.strip():
        return CpuList(None, f"{cmd.name}: empty answer")
    try:
        return CpuList(parse_cpu_list(cmd.stdout))
    except ValueError:
        shown = cmd.stdout.strip()[:SHOWN]
        return CpuList(None, f"{cmd.name}: not a CPU list: {shown!r}")


def decide(*, expected_vcpus: int, infra: str | None = None, failure: str | None = None,
           classification: Classification | None = None,
           online: CommandEvidence | str | None = None,
           present: CommandEvidence | str | None = None,
           commands: tuple[CommandEvidence, ...] = (), console: str = "") -> Decision:
    """``infra``: why the lab failed; ``failure``: why the guest never became usable;
    ``online``/``present``: the sysfs reads (a plain string: output of a command that
    exited 0); ``commands``: every collect command (faults other than ``online``'s);
    ``console``: the boot's console (who is at fault when a session is lost)."""
    if infra is not None:
        return Decision(Outcome.INFRA_ERROR, infra)
    if failure is not None:
        panic = classification.panic if classification is not None else None
        reason = f"kernel panic: {panic}" if panic else failure
        if panic and not failure.startswith("kernel panic"):
            reason = f"{reason} ({failure})"
        offline = classification.offline_cpus if classification is not None else ()
        return Decision(Outcome.BOOT_FAILURE, reason, offline_cpus=tuple(offline))
    for c in commands:
        if c.fault is CommandFault.SESSION_LOST:
            died = watch(console).failed
            if died:
                return Decision(Outcome.BOOT_FAILURE,
                                f"SSH session lost: {c.error} ({died})")
            return Decision(Outcome.INFRA_ERROR,
                            f"ssh_lost: SSH session lost during collection: {c.error}")
        if c.fault is CommandFault.TIMEOUT:
            return Decision(Outcome.BOOT_FAILURE, f"the guest stopped answering: {c.error}")
    read = read_cpu_list(online)
    if read.cpus is None:
        return Decision(Outcome.BOOT_FAILURE, f"collection failed: {read.problem}")
    online_cpus = read.cpus
    have = set(online_cpus)
    missing = tuple(c for c in range(expected_vcpus) if c not in have)
    if missing:
        n = expected_vcpus - len(missing)
        reason = f"CPU {format_cpu_list(missing)} offline ({n}/{expected_vcpus} online)"
        present_cpus = read_cpu_list(present, "present").cpus if present is not None else None
        if present_cpus is not None and len(present_cpus) < expected_vcpus:
            reason += f"; only {len(present_cpus)} present"
        return Decision(Outcome.VCPU_OFFLINE, reason, offline_cpus=missing,
                        online_cpus=online_cpus)
    return Decision(Outcome.OK, "", online_cpus=online_cpus)


def classify_text(ev: BootEvidence, classify: Classifier | None = None
                  ) -> Classification | None:
    """The classifier's reading of the boot: dmesg when we logged in and read it, else
    the console (a panic, a stuck bring-up...). The online list is passed only when it
    was read and parsed."""
    text = ev.stdout("dmesg") or ev.console
    if not text:
        return None
    read = read_cpu_list(ev.command("online"))
    online = format_cpu_list(read.cpus) if read.cpus is not None else None
    if classify is None:
        from harness.classify import classify as classify_fn

        classify = classify_fn
    return classify(text, expected_cpus=ev.cell.vcpus, online=online)


def judge(ev: BootEvidence, classify: Classifier | None = None,
          artifacts: dict[str, str] | None = None) -> BootResult:
    """The ``BootResult`` of one boot's evidence (pure; ``artifacts``: name -> path of the
    files the recorder writes, see ``harness.store.recorder.artifact_names``)."""
    cls = classify_text(ev, classify)
    saw = ev.saw
    decision = decide(expected_vcpus=ev.cell.vcpus, infra=saw.infra, failure=saw.failure,
                      classification=cls, online=ev.command("online"),
                      present=ev.command("present"), commands=ev.commands,
                      console=ev.console)
    return build_result(ev, decision, cls, artifacts or {})


def _flags(ev: BootEvidence) -> dict[str, Any]:
    """What the result says about evidence it could not fully use."""
    out: dict[str, Any] = {}
    failed = {c.name: c.failure() for c in ev.commands if not c.succeeded}
    if failed:
        out["collect_errors"] = failed
    cut = [c.name for c in ev.commands if c.stdout_truncated or c.stderr_truncated]
    if ev.console_truncated:
        cut.append("console")
    if cut:
        out["truncated"] = cut
    unusable: dict[str, str] = {}
    unparsed: dict[str, str] = {}
    for name in ("online", "present"):
        c = ev.command(name)
        if c is None:
            continue
        read = read_cpu_list(c, name)
        if read.cpus is None:
            unusable[name] = read.problem
            if c.stdout.strip():
                unparsed[name] = c.stdout.strip()[:SHOWN]
    if unusable:
        out["unusable"] = unusable
    if unparsed:
        out["unparsed"] = unparsed
    if ev.saw.timeout is not None:
        out["timeout"] = ev.saw.timeout.value
    if ev.saw.ssh_error is not None:
        out["ssh_error"] = ev.saw.ssh_error[:SHOWN]
        out["ssh_error_class"] = (ev.saw.ssh_error_class.value
                                  if ev.saw.ssh_error_class is not None else None)
    return out


def build_result(ev: BootEvidence, decision: Decision, cls: Classification | None,
                 artifacts: dict[str, str]) -> BootResult:
    """The ``BootResult`` of one boot (pure): the decision, the classifier's evidence,
    timestamps and the durations between them."""
    cell: Cell = ev.cell
    timings = dict(ev.timings)
    last = cls.last_boot if cls is not None else None
    latency = None
    if last is not None and last.bringup_start_s is not None and last.bringup_end_s is not None:
        latency = round(last.bringup_end_s - last.bringup_start_s, 6)
    extra: dict[str, Any] = {"domain": ev.domain, "durations": durations(timings)}
    if ev.hook:
        extra["hook"] = dict(ev.hook)
    if ev.earlier:
        extra["earlier_attempts"] = list(ev.earlier)
    if last is not None and last.slowest_cpu_s is not None:
        extra["slowest_cpu_s"] = last.slowest_cpu_s
    for key in ("present", "nproc"):
        c = ev.command(key)
        if c is not None and c.succeeded:
            extra[key] = c.stdout.strip()[:SHOWN]
    extra.update(_flags(ev))
    release = first_line(ev.stdout("uname_r"), SHOWN) or (
        last.kernel_release if last is not None else None)
    versions = boot_versions(ev, release)
    if versions:
        extra["versions"] = versions
    return BootResult(
        run_id=ev.run_id, cell_id=cell.id, index=ev.index, outcome=decision.outcome,
        reason=decision.reason, host=cell.host, guest=cell.guest, vcpus=cell.vcpus,
        attempt=ev.attempt, offline_cpus=decision.offline_cpus,
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


def boot_versions(ev: BootEvidence, guest_kernel: str | None) -> dict[str, str]:
    """What explains the boot, when the host said (``Domain.evidence()["versions"]``, a
    JSON object: QEMU, libvirt, host kernel, firmware...), plus the guest kernel it ran;
    empty for backends that say nothing (pure; never raises on what a host sent)."""
    raw_text = dict(ev.host).get("versions")
    if not raw_text:
        return {}
    try:
        raw = json.loads(raw_text)
    except ValueError:
        raw = {}
    out = {str(k)[:SHOWN]: str(v)[:SHOWN] for k, v in raw.items()} if isinstance(
        raw, dict) else {}
    if guest_kernel:
        out["guest_kernel"] = guest_kernel
    return dict(sorted(out.items()))


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
