"""Host-side timing per vCPU during a boot: was the late vCPU held back on the host?

A boot hook (``VcpuSampler``) samples, from the moment the domain is resumed until just
before it is stopped, every ``interval_s``:

- libvirt's per-vCPU statistics (``VIR_DOMAIN_STATS_VCPU``): ``vcpu.N.time`` (ns the vCPU
  thread ran on a host CPU), ``vcpu.N.delay`` (ns it waited in the host's run queue while
  runnable) and ``vcpu.N.wait`` where the host kernel provides them (schedstats);
- on a local host also each vCPU thread under ``/proc/<qemu pid>/task/<tid>/``: its state
  (``R``, ``S``, ``D``, ``T``...), its run-queue delay (``schedstat``), its CPU affinity
  (``Cpus_allowed_list``), and whether the cgroup freezer holds it (v2 ``cgroup.events``
  ``frozen 1`` of libvirt's per-vCPU cgroup, or a v1 ``freezer.state`` of ``FROZEN``).

Per vCPU the summary gives ``host_delay_s``: the time the host kept the thread from running
while the guest could have used it = run-queue delay + time seen frozen or stopped by the
host (a thread the cgroup freezer holds is asleep, not queued, so ``delay`` alone does not
see it). ``late_cpu`` is the secondary vCPU with the largest host delay. On a local host
the sampler also watches the serial console for the guest's ``smp: Bringing up secondary
CPUs`` and ``smp: Brought up``: the same totals over that bring-up window (from the last
sample before the first line to the first sample after the second) are ``bringup``, and
are what ``late_vcpu_delay`` reports (over a whole boot on a loaded host, every vCPU
waits seconds in the run queue; during bring-up the held one stands out). The samples go to
the boot's folder as ``host-vcpus.json``; the summary into ``BootResult.extra["hook"]
["host_vcpus"]`` (via the hook's ``report``). Sampling never fails a boot: errors are
counted and the first one kept.

Everything that interprets numbers (``parse_*``, ``summarize``, ``late_vcpu_delay``) is
pure; only ``VcpuSampler`` and ``read_thread`` do I/O.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.backend.base import BootRequest, Domain

SAMPLES_FILE = "host-vcpus.json"
DEFAULT_INTERVAL_S = 0.25
MAX_SAMPLES = 4000  # ~17 min at 0.25 s: a boot that long keeps its first samples only
HELD_STATES = frozenset("Tt")  # stopped by a signal or traced: the host holds the thread


# --- parsers (pure) ---------------------------------------------------------------------

@dataclass(frozen=True)
class TaskStat:
    state: str  # R, S, D, T, t, Z, ...
    cpu_ticks: int  # utime + stime, in clock ticks


def parse_task_stat(text: str) -> TaskStat | None:
    """``/proc/<pid>/task/<tid>/stat``; None when it cannot be read as one."""
    close = text.rfind(")")
    if close < 0:
        return None
    rest = text[close + 2:].split()
    if len(rest) < 13:
        return None
    try:
        return TaskStat(rest[0], int(rest[11]) + int(rest[12]))
    except ValueError:
        return None


def parse_schedstat(text: str) -> tuple[int, int] | None:
    """``/proc/<pid>/task/<tid>/schedstat``: (ns on a CPU, ns waiting in the run queue)."""
    parts = text.split()
    if len(parts) < 2:
        return None
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return None


def parse_allowed_list(status: str) -> str | None:
    """``Cpus_allowed_list`` of a ``/proc/.../status`` text."""
    for line in status.splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    return None


def frozen_v2(events: str) -> bool:
    return any(line.strip() == "frozen 1" for line in events.splitlines())


def frozen_v1(state: str) -> bool:
    return state.strip() in ("FROZEN", "FREEZING")


def libvirt_vcpus(stats: Mapping[str, int]) -> dict[int, dict[str, int]]:
    """``{"vcpu.1.time": 5, ...}`` -> ``{1: {"time": 5, ...}}`` (other keys dropped)."""
    out: dict[int, dict[str, int]] = {}
    for key, value in stats.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "vcpu" and parts[1].isdigit():
            out.setdefault(int(parts[1]), {})[parts[2]] = int(value)
    return out


# --- summary (pure) ----------------------------------------------------------------------

def _delta(first: Mapping[str, Any], last: Mapping[str, Any], key: str) -> float | None:
    a, b = first.get(key), last.get(key)
    if a is None or b is None:
        return None
    return round(max(0, b - a) / 1e9, 6)


BRINGUP_START = "smp: Bringing up secondary CPUs"
BRINGUP_END = ("smp: Brought up", "SMP: Total of")


def bringup_phase(console: str) -> int:
    """0 before the guest starts its secondaries, 1 while it brings them up, 2 after."""
    if any(m in console for m in BRINGUP_END):
        return 2
    return 1 if BRINGUP_START in console else 0


def bringup_window(samples: Sequence[Mapping[str, Any]]) -> tuple[int, int] | None:
    """Sample indices that bracket the guest's secondary bring-up: the last sample before
    the console showed it starting, the first that showed it done (None if not seen)."""
    start = next((i for i, s in enumerate(samples) if s.get("c", 0) >= 1), None)
    end = next((i for i, s in enumerate(samples) if s.get("c", 0) >= 2), None)
    if start is None or end is None:
        return None
    return max(start - 1, 0), end


def summarize(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-vCPU totals over the sampled window (see the module doc), and over the guest's
    bring-up (``bringup``) when the console showed it. ``samples``: in time order, each
    ``{"t": s, "c": bring-up phase, "v": {cpu: {time, delay, wait, rq_delay, state,
    frozen}}}`` (any field may be missing)."""
    out = _totals(samples)
    win = bringup_window(samples)
    if win is not None and win[1] > win[0]:
        out["bringup"] = _totals(samples[win[0]:win[1] + 1])
    return out


def _totals(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not samples:
        return {"samples": 0, "vcpus": {}}
    cpus = sorted({int(c) for s in samples for c in s["v"]})
    per: dict[str, Any] = {}
    for cpu in cpus:
        seen = [(float(s["t"]), s["v"].get(cpu) or s["v"].get(str(cpu)) or {})
                for s in samples]
        seen = [(t, v) for t, v in seen if v]
        if not seen:
            continue
        first, last = seen[0][1], seen[-1][1]
        delay = _delta(first, last, "delay")
        if delay is None:
            delay = _delta(first, last, "rq_delay")
        frozen = 0.0
        for (t0, v0), (t1, _) in pairwise(seen):
            if v0.get("frozen") or v0.get("state") in HELD_STATES:
                frozen += t1 - t0
        states = Counter(str(v["state"]) for _, v in seen if v.get("state"))
        entry: dict[str, Any] = {
            "time_s": _delta(first, last, "time"),
            "delay_s": delay,
            "wait_s": _delta(first, last, "wait"),
            "frozen_s": round(frozen, 3),
            "host_delay_s": round((delay or 0.0) + frozen, 3),
            "states": dict(sorted(states.items())),
        }
        affinity = next((v["affinity"] for _, v in seen if v.get("affinity")), None)
        if affinity is not None:
            entry["affinity"] = affinity
        per[str(cpu)] = entry
    secondary = {int(c): e["host_delay_s"] for c, e in per.items() if int(c) > 0}
    late = max(secondary, key=lambda c: (secondary[c], -c)) if secondary else None
    return {
        "samples": len(samples),
        "window_s": round(float(samples[-1]["t"]) - float(samples[0]["t"]), 3),
        "vcpus": per,
        "late_cpu": late,
        "max_host_delay_s": secondary[late] if late is not None else None,
    }


def late_vcpu_delay(extra: Mapping[str, Any], offline: Sequence[int] = (),
                    slowest: int | None = None) -> tuple[int, float] | None:
    """(vCPU, host delay s) of a boot's late vCPU: the first offline one, else the one
    the guest brought up last, else the one the host held longest; None without stats."""
    hook = extra.get("hook")
    summary = hook.get("host_vcpus") if isinstance(hook, Mapping) else None
    if not isinstance(summary, Mapping):
        return None
    if isinstance(summary.get("bringup"), Mapping):
        summary = summary["bringup"]  # the window that matters, when the console showed it
    per = summary.get("vcpus")
    if not isinstance(per, Mapping) or not per:
        return None
    for cpu in (*offline, slowest, summary.get("late_cpu")):
        if cpu is None:
            continue
        entry = per.get(str(cpu))
        if isinstance(entry, Mapping) and isinstance(entry.get("host_delay_s"), int | float):
            return int(cpu), float(entry["host_delay_s"])
    return None


# --- reading one thread (local hosts) ---------------------------------------------------

@dataclass
class _Cgroups:
    v2: Path | None
    v1_freezer: Path | None


def _cgroup_mounts() -> _Cgroups:
    from harness.lab.freezer import mounts

    try:
        ms = mounts()
    except OSError:
        return _Cgroups(None, None)
    v2 = next((m.path for m in ms if m.fstype == "cgroup2"), None)
    v1 = next((m.path for m in ms if m.fstype == "cgroup" and "freezer" in m.options), None)
    if v1 is None:
        from harness.lab.freezer import OWN_V1_MOUNT

        if (OWN_V1_MOUNT / "freezer.state").exists() or (OWN_V1_MOUNT / "tasks").exists():
            v1 = OWN_V1_MOUNT
    return _Cgroups(v2, v1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def read_thread(pid: int, tid: int, cg: _Cgroups, *, affinity: bool = False
                ) -> dict[str, Any]:
    """State, run-queue delay, frozen flag (and affinity) of one local thread."""
    from harness.lab.freezer import parse_proc_cgroup

    base = Path(f"/proc/{pid}/task/{tid}")
    out: dict[str, Any] = {}
    st = parse_task_stat(_read(base / "stat") or "")
    if st is None:
        return out
    out["state"] = st.state
    sched = parse_schedstat(_read(base / "schedstat") or "")
    if sched is not None:
        out["rq_delay"] = sched[1]
    groups = parse_proc_cgroup(_read(base / "cgroup") or "")
    frozen = False
    if cg.v2 is not None and groups.get("") not in (None, "", "/"):
        ev = _read(cg.v2 / groups[""].lstrip("/") / "cgroup.events")
        frozen = frozen or (ev is not None and frozen_v2(ev))
    if cg.v1_freezer is not None and groups.get("freezer") not in (None, "", "/"):
        fs = _read(cg.v1_freezer / groups["freezer"].lstrip("/") / "freezer.state")
        frozen = frozen or (fs is not None and frozen_v1(fs))
    out["frozen"] = frozen
    if affinity:
        allowed = parse_allowed_list(_read(base / "status") or "")
        if allowed is not None:
            out["affinity"] = allowed
    return out


# --- the hook ------------------------------------------------------------------------------

@dataclass
class _State:
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    source: set[str] = field(default_factory=set)


class VcpuSampler:
    """A ``BootHook`` (``harness.bootloop``): samples the domain's vCPUs on the host while
    it boots. Use one per boot; put it before hooks that stop QEMU in ``before_stop``."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.state = _State()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._threads: dict[int, int] = {}
        self._pid: int | None = None
        self._cg = _Cgroups(None, None)
        self._summary: dict[str, Any] | None = None
        self._watch_console = False  # local hosts: the console file is cheap to read
        self._phase = 0

    def _error(self, exc: BaseException) -> None:
        self.state.errors += 1
        if not self.state.first_error:
            self.state.first_error = f"{type(exc).__name__}: {exc}"

    def before_resume(self, domain: Domain, request: BootRequest) -> dict[str, Any] | None:
        caps = request.host.capabilities  # declared by the backend's registry entry
        if not caps.vcpu_stats:
            return None  # a backend without per-vCPU statistics (simulated lab)
        if caps.host_local:
            from harness.lab.freezer import tgid_of

            self._watch_console = True
            try:
                self._threads = domain.vcpu_threads()  # type: ignore[attr-defined]
                first = next(iter(self._threads.values()), None)
                self._pid = tgid_of(first) if first is not None else None
                self._cg = _cgroup_mounts()
            except Exception as exc:  # host evidence is best effort
                self._error(exc)
        self._t0 = self.clock()
        self._sample(domain, affinity=False)  # the baseline, still paused
        self._thread = threading.Thread(target=self._run, args=(domain,),
                                        name=f"vcpustats-{domain.name}", daemon=True)
        self._thread.start()
        return None

    def _run(self, domain: Domain) -> None:
        first = True
        while not self._stop.wait(self.interval_s):
            self._sample(domain, affinity=first)  # affinity once QEMU runs (libvirt sets it)
            first = False
            if len(self.state.samples) >= MAX_SAMPLES:
                return

    def _sample(self, domain: Domain, *, affinity: bool) -> None:
        t = round(self.clock() - self._t0, 4)
        v: dict[int, dict[str, Any]] = {}
        try:
            for cpu, vals in libvirt_vcpus(domain.vcpu_stats()).items():  # type: ignore[attr-defined]
                v[cpu] = {k: vals[k] for k in ("time", "delay", "wait", "state") if k in vals}
                if "state" in v[cpu]:
                    v[cpu]["vstate"] = v[cpu].pop("state")  # libvirt's: 1 running, 0 offline
            self.state.source.add("libvirt")
        except Exception as exc:
            self._error(exc)
        if self._pid is not None:
            for cpu, tid in self._threads.items():
                try:
                    info = read_thread(self._pid, tid, self._cg, affinity=affinity)
                except Exception as exc:
                    self._error(exc)
                    continue
                if info:
                    v.setdefault(cpu, {}).update(info)
                    self.state.source.add("proc")
        sample: dict[str, Any] = {"t": t, "v": v}
        if self._watch_console and self._phase < 2:
            try:
                self._phase = bringup_phase(domain.console_text())
            except Exception as exc:
                self._error(exc)
                self._watch_console = False
        sample["c"] = self._phase
        if v:
            self.state.samples.append(sample)

    def _finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def before_stop(self, domain: Domain, request: BootRequest) -> None:
        if self._thread is not None:
            self._finish()
            self._sample(domain, affinity=False)  # the last one, QEMU still running

    def after_stop(self, domain: Domain, request: BootRequest) -> None:
        self._finish()
        if self._summary is not None or not self.state.samples:
            return
        self._summary = summarize(self.state.samples)
        self._summary["interval_s"] = self.interval_s
        self._summary["source"] = sorted(self.state.source)
        if self.state.errors:
            self._summary["errors"] = self.state.errors
            self._summary["first_error"] = self.state.first_error
        with contextlib.suppress(OSError):
            folder = Path(request.workdir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / SAMPLES_FILE).write_text(json.dumps(
                {"summary": self._summary, "samples": self.state.samples},
                sort_keys=True, separators=(",", ":")) + "\n", encoding="utf-8")
            self._summary["file"] = SAMPLES_FILE

    def report(self) -> dict[str, Any]:
        """What goes into ``BootResult.extra["hook"]`` once the boot is stopped."""
        return {"host_vcpus": self._summary} if self._summary is not None else {}
