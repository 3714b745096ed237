"""CPU cycle mode (``reboot: cpu-cycle``, ``cycles: N``): after a boot is ready, take each
secondary CPU offline and online again N times through
``/sys/devices/system/cpu/cpuN/online`` over SSH, and record every online attempt as a
*trial*: the same outcome classes and evidence rules as a boot, at a fraction of its cost
(the guest's ``__cpu_up`` path and its bring-up timeout run without a reboot).

The seed's second phase shows here: a CPU that failed to come online at boot (KVM, or
QEMU's TCG, already marked it powered on) meets a PSCI CPU_ON error when a trial onlines
it again, and the guest prints ``psci: failed to boot CPUn (-22)``; such a trial gets the
signature ``psci_already_on`` and its evidence names the earlier failure of the same CPU.

Trials are rows of the cell like boots (``extra["trial"]`` labels them), with indices
after the cell's boots: boot ``b``'s trial ``t`` is ``boots + b * T + t``, ``T`` = cycles x
secondary CPUs, so a resume (which re-does missing boot indices ``< boots``) never
confuses them. Everything here is pure except ``run_cycles`` (one SSH command per trial).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.classify.cpulist import format_cpu_list, parse_cpu_list
from harness.model import BootResult, Cell, Outcome, Signature

DEFAULT_CYCLES = 3
MAX_CYCLES = 10_000
MARK = "vmbh-trial"
# one trial, one SSH round trip; {cpu} is an int checked by trial_command. Offline (a
# no-op for a CPU that is offline already), online, the guest's clock around the online
# write, the CPU's state and the online list after, and the kernel messages since the
# previous trial (dmesg -c: the boot's own dmesg was collected before the first trial)
TRIAL_COMMAND = (
    "f=/sys/devices/system/cpu/cpu{cpu}/online; echo 0 > $f; o=$?; "
    "a=$(cat /proc/uptime); echo 1 > $f; r=$?; b=$(cat /proc/uptime); "
    "echo \"" + MARK + " off=$o on=$r up0=${{a%% *}} up1=${{b%% *}} state=$(cat $f) "
    "online=$(cat /sys/devices/system/cpu/online)\"; dmesg -c"
)
CLEAR_DMESG = "dmesg -c > /dev/null"
ALREADY_ON = Signature("psci_already_on",
                       "PSCI CPU_ON refused on retry: vCPU already on after a failed bring-up")


def cycles_of(cell: Cell) -> int:
    """The cell's ``cycles`` parameter (matrix axis or top-level key)."""
    v = dict(cell.params).get("cycles", DEFAULT_CYCLES)
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else DEFAULT_CYCLES


def trial_command(cpu: int, vcpus: int) -> str:
    if isinstance(cpu, bool) or not isinstance(cpu, int) or not 1 <= cpu < vcpus:
        raise ValueError(f"CPU {cpu!r} is not a secondary CPU of a {vcpus}-vCPU guest")
    return TRIAL_COMMAND.format(cpu=cpu)


def trials_per_boot(cell: Cell) -> int:
    return cycles_of(cell) * max(cell.vcpus - 1, 0)


def trial_index(cell: Cell, boot: int, trial: int) -> int:
    return cell.boots + boot * trials_per_boot(cell) + trial


def schedule(cell: Cell) -> list[tuple[int, int]]:
    """``(cycle, cpu)`` of each trial of one boot, in order: every secondary per cycle."""
    return [(k, cpu) for k in range(cycles_of(cell)) for cpu in range(1, cell.vcpus)]


@dataclass(frozen=True)
class TrialOutput:
    off: int | None
    on: int | None
    guest_s: float | None  # the online write, by the guest's clock (10 ms resolution)
    state: str
    online: str
    dmesg: str


_FIELD = re.compile(r"(\w+)=(\S*)")


def _int(v: str | None) -> int | None:
    return int(v) if v is not None and re.fullmatch(r"-?\d{1,6}", v) else None


def _float(v: str | None) -> float | None:
    return float(v) if v is not None and re.fullmatch(r"\d{1,9}(?:\.\d{1,6})?", v) else None


def parse_trial(stdout: str) -> TrialOutput | None:
    """The marker line and the kernel messages after it; None without a marker (the
    guest answered something else). Never raises on what a guest prints."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(MARK + " "):
            f = dict(_FIELD.findall(line[len(MARK):]))
            up0, up1 = _float(f.get("up0")), _float(f.get("up1"))
            guest = round(up1 - up0, 3) if up0 is not None and up1 is not None else None
            return TrialOutput(_int(f.get("off")), _int(f.get("on")), guest,
                               f.get("state", ""), f.get("online", ""),
                               "\n".join(lines[i + 1:]))
    return None


@dataclass
class TrialEvidence:
    """What one trial saw (filled by ``run_cycles``)."""

    cycle: int
    cpu: int
    started: float
    ended: float = 0.0
    stdout: str = ""
    stderr: str = ""
    exit_status: int | None = None
    failure: str | None = None  # the guest stopped answering
    infra: str | None = None  # the SSH session failed on the controller's side
    console: str = ""  # the console of the trial (for a guest that stopped answering)


@dataclass(frozen=True)
class TrialDecision:
    outcome: Outcome
    reason: str
    offline: tuple[int, ...] = ()
    online: tuple[int, ...] | None = None
    output: TrialOutput | None = None


def decide_trial(ev: TrialEvidence, vcpus: int,
                 before: tuple[int, ...] | None = None) -> TrialDecision:
    """The class of one trial (pure), by the rules of a boot: an SSH failure on our side
    is ``infra_error``; a guest that stops answering is ``boot_failure``; then the online
    list read after the attempt is the authority: the trial's CPU not online, or a CPU
    that was online ``before`` the trial (default: all) missing -> ``vcpu_offline``;
    else ``ok``. A CPU already offline before (an earlier failure) is named in the reason
    but does not fail another CPU's trial: that failure is counted once, where it
    happened."""
    what = f"trial: CPU{ev.cpu} online, cycle {ev.cycle + 1}"
    if ev.infra is not None:
        return TrialDecision(Outcome.INFRA_ERROR, f"{what}: {ev.infra}")
    if ev.failure is not None:
        return TrialDecision(Outcome.BOOT_FAILURE, f"{what}: {ev.failure}")
    out = parse_trial(ev.stdout)
    if out is None:
        return TrialDecision(Outcome.BOOT_FAILURE,
                             f"{what}: the guest did not report the attempt "
                             f"(exit {ev.exit_status})")
    try:
        online = parse_cpu_list(out.online)
    except ValueError:
        return TrialDecision(Outcome.BOOT_FAILURE,
                             f"{what}: cannot read the online CPU list: {out.online!r}",
                             output=out)
    now = set(online)
    was = set(range(vcpus)) if before is None else set(before) | {ev.cpu}
    lost = tuple(c for c in range(vcpus) if c in was and c not in now)
    if lost or out.on != 0 or out.state != "1":
        offline = lost or (ev.cpu,)
        why = [f"CPU {format_cpu_list(offline)} offline ({vcpus - len(offline)}/{vcpus} "
               "online)"]
        if out.on not in (0, None):
            err = first_line(ev.stderr)
            why.append(f"online write exit {out.on}" + (f": {err}" if err else ""))
        return TrialDecision(Outcome.VCPU_OFFLINE, f"{what}: " + "; ".join(why),
                             offline, online, out)
    still = tuple(c for c in range(vcpus) if c not in now)
    note = f"CPU {format_cpu_list(still)} still offline from before" if still else ""
    return TrialDecision(Outcome.OK, note, (), online, out)


def first_line(text: str, limit: int = 120) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


@dataclass
class CpuHistory:
    """Per CPU, the first failure seen in this boot (the first phase), to link later
    trials of the same CPU to it."""

    first: dict[int, dict[str, Any]] = field(default_factory=dict)

    def note_boot(self, index: int, offline: Sequence[int], texts: dict[int, str]) -> None:
        for cpu in offline:
            self.first.setdefault(cpu, {"index": index, "kind": "boot",
                                        "message": texts.get(cpu, "")})

    def note_trial(self, index: int, cpu: int, outcome: Outcome, message: str) -> None:
        if outcome is Outcome.VCPU_OFFLINE:
            self.first.setdefault(cpu, {"index": index, "kind": "trial", "message": message})


def failure_messages(findings: Sequence[Any]) -> dict[int, str]:
    """CPU -> the first bring-up failure message among a boot's findings."""
    out: dict[int, str] = {}
    for f in findings:
        if f.cpu is not None and f.kind in ("cpu_failed_online", "cpu_failed_boot",
                                            "psci_failed_boot", "cpu_failed_alive"):
            out.setdefault(f.cpu, f.text)
    return out


def trial_result(run_id: str, cell: Cell, boot_index: int, trial_no: int,
                 ev: TrialEvidence, history: CpuHistory, domain: str,
                 artifacts: dict[str, str], classify: Callable[..., Any] | None = None,
                 before: tuple[int, ...] | None = None) -> BootResult:
    """The ``BootResult`` of one trial (pure but for the optional classifier call);
    ``before``: the CPUs online before it (the boot's, then the previous trial's)."""
    d = decide_trial(ev, cell.vcpus, before)
    index = trial_index(cell, boot_index, trial_no)
    findings: tuple[Any, ...] = ()
    sigs: list[Signature] = []
    if d.output is not None and d.output.dmesg.strip() and classify is not None:
        cls = classify(d.output.dmesg, expected_cpus=cell.vcpus, online=None)
        findings = tuple(cls.findings)  # this trial's kernel messages (dmesg -c)
        sigs = list(cls.signature_list())
    earlier = history.first.get(ev.cpu)
    psci = [f for f in findings if f.kind == "psci_failed_boot" and f.cpu == ev.cpu]
    if earlier is not None and psci and d.outcome is Outcome.VCPU_OFFLINE:
        sigs.append(ALREADY_ON)
    trial: dict[str, Any] = {"boot": boot_index, "cycle": ev.cycle + 1, "cpu": ev.cpu,
                             "seconds": round(ev.ended - ev.started, 3)}
    if d.output is not None:
        trial.update({"offline_exit": d.output.off, "online_exit": d.output.on,
                      "guest_s": d.output.guest_s})
    if earlier is not None:
        trial["first_phase"] = earlier  # the same CPU's first failure (boot or trial)
        trial["phase"] = "second"
    if ev.stderr.strip():
        trial["stderr"] = ev.stderr.strip()[:500]
    for cpu in d.offline:
        history.note_trial(index, cpu, d.outcome,
                           next((f.text for f in findings if f.cpu == cpu), d.reason))
    extra = {"domain": domain, "trial": trial,
             "durations": {"trial": round(ev.ended - ev.started, 3)}}
    return BootResult(
        run_id=run_id, cell_id=cell.id, index=index, outcome=d.outcome, reason=d.reason,
        host=cell.host, guest=cell.guest, vcpus=cell.vcpus, attempt=1,
        offline_cpus=d.offline, online_cpus=d.online,
        signatures=tuple(dict.fromkeys(sigs)), findings=findings,
        timings=(("trial_start", ev.started), ("trial_end", ev.ended)),
        bringup_latency_s=d.output.guest_s if d.output is not None and d.outcome is
        Outcome.OK else None,
        slowest_cpu=ev.cpu,
        artifacts=tuple(sorted(artifacts.items())),
        extra=tuple(sorted(extra.items())),
    )


def run_cycles(chan: Any, cell: Cell, *, console: Callable[[], str],
               clock: Callable[[], float] = time.time,
               stopping: Callable[[], bool] = lambda: False) -> list[TrialEvidence]:
    """Run the boot's trials on a logged-in channel; stops at the first trial after which
    the guest no longer answers (the boot is over then) or when ``stopping()``."""
    from harness.collect.commands import CommandTimeout
    from harness.collect.console import watch
    from harness.errors import CollectError

    out: list[TrialEvidence] = []
    with contextlib.suppress(CollectError):  # the first trial will say what is wrong
        chan.run(CLEAR_DMESG, cell.timeouts.command)
    offset = len(console())
    for cycle, cpu in schedule(cell):
        if stopping():
            break
        ev = TrialEvidence(cycle, cpu, clock())
        try:
            res = chan.run(trial_command(cpu, cell.vcpus), cell.timeouts.command)
            ev.stdout, ev.stderr, ev.exit_status = res.stdout, res.stderr, res.exit_status
        except CommandTimeout as exc:
            ev.failure = f"the guest stopped answering: {exc}"
        except CollectError as exc:
            text = console()[offset:]
            if watch(text).failed:
                ev.failure = f"SSH session lost: {exc} ({watch(text).failed})"
            else:
                ev.infra = f"ssh_lost: SSH session lost during the trial: {exc}"
        ev.ended = clock()
        ev.console = console()[offset:][-20000:]
        out.append(ev)
        if ev.failure is not None or ev.infra is not None:
            break
    return out
