"""The stall injector: a boot hook that holds one secondary vCPU thread frozen past the
guest's bring-up timeout (5 s on Linux >= 5.4), with a given probability per boot.

The guest kernel then prints ``CPUn: failed to come online`` and ``CPUn: failed in
unknown state : 0x0`` and finishes booting with one CPU less: the FT-2500 symptom, made
on purpose, on a real kernel.

Sequence per boot (the boot loop starts the domain paused when hooks exist):
``before_resume`` draws the boot's fate (seeded by run, cell and boot index, so a
re-run of the same boot makes the same choice), reads the vCPU thread ids (QMP
``query-cpus-fast``), freezes the chosen one and arms a thaw after ``seconds``.
``before_stop`` (when the boot loop calls it) kills QEMU while the thread is still
frozen, then thaws: a thaw on a guest that gave up on the CPU can hang it, and a frozen
thread would make libvirt's graceful destroy wait 10 s (v2) or fail (v1).
``after_stop`` cancels the timer and thaws whatever is still frozen.

``seconds`` shorter than the bring-up timeout makes a late-but-successful CPU (visible as
bring-up latency); longer than the whole boot (e.g. 300) makes the CPU fail for sure.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from harness.collect.vcpustats import VcpuSampler
from harness.errors import ConfigError, InfraError
from harness.lab.freezer import Freeze
from harness.lab.reaper import ReapHook, enable_subreaper
from harness.lab.remote_freeze import RemoteFreeze

if TYPE_CHECKING:
    from harness.backend.base import BootRequest, Domain
    from harness.inventory import Lab, StallFault


def _rng(request: BootRequest, source: str) -> random.Random:
    key = f"{request.run_id}\0{request.cell.id}\0{request.boot_index}\0{source}"
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def choose(fault: StallFault, request: BootRequest, source: str) -> int | None:
    """The vCPU to stall in this boot, or None (pure: same request, same answer)."""
    rng = _rng(request, source)
    draw = rng.random()
    vcpus = request.cell.vcpus
    if draw >= fault.probability or vcpus < 2:
        return None
    if fault.cpu is not None:
        return fault.cpu if fault.cpu < vcpus else None
    if fault.thaw_after_failure:
        # the last secondary: the guest clears its boot data only after a failure, so a
        # late CPU that is not the last one arrives with the next CPU's idle task and
        # stack (two CPUs as one: "Attempted to kill the idle task!", seen on 6.1)
        return vcpus - 1
    return rng.randint(1, vcpus - 1)


def make_freeze(domain: Domain, tid: int) -> Freeze | RemoteFreeze:
    """The freezer for a domain's vCPU thread: on this machine, or over SSH on the
    domain's remote host (the backend's ``host_command``)."""
    backend = getattr(domain, "backend", None)
    if backend is not None and getattr(backend, "remote", False):
        run = getattr(backend, "host_command", None)
        if run is None:
            raise InfraError(f"{domain.name}: a remote host without 'ssh:' in the lab file "
                             "cannot stall a vCPU", reason="stall_injector", retryable=False)
        return RemoteFreeze(tid, domain.name, run)
    return Freeze(tid, domain.name)


class StallHook:
    """A ``BootHook`` (see ``harness.bootloop``) for one boot."""

    def __init__(self, fault: StallFault, source: str) -> None:
        self.fault = fault
        self.source = source  # "host:<name>" or "guest:<name>"
        self.freeze: Freeze | RemoteFreeze | None = None
        self._timer: threading.Timer | None = None
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()
        self._info: dict[str, Any] = {}
        self._lock = threading.Lock()

    def before_resume(self, domain: Domain, request: BootRequest) -> dict[str, Any] | None:
        cpu = choose(self.fault, request, self.source)
        if cpu is None:
            return {"stall": None, "stall_source": self.source}
        threads_of: Callable[[], dict[int, int]] | None = getattr(domain, "vcpu_threads", None)
        if threads_of is None:
            raise InfraError(f"{domain.name}: this backend cannot list vCPU threads, so it "
                             "cannot stall one", reason="stall_injector", retryable=False)
        threads = threads_of()
        if cpu not in threads:
            raise InfraError(f"{domain.name}: no vCPU {cpu} among {sorted(threads)}",
                             reason="stall_injector", retryable=False)
        fr = make_freeze(domain, threads[cpu])
        fr.freeze()
        with self._lock:
            self.freeze = fr
            self._timer = threading.Timer(self.fault.seconds, self._thaw)
            self._timer.daemon = True
            self._timer.start()
        info: dict[str, Any] = {
            "stall": cpu, "stall_s": self.fault.seconds, "stall_method": fr.method,
            "stall_source": self.source, "stall_thread": fr.tid, "stall_at": time.time()}
        self._info = info
        if self.fault.thaw_after_failure:
            info["thaw"] = "after_failure"
            self._watcher = threading.Thread(target=self._thaw_after_failure,
                                             args=(domain, cpu, info),
                                             name=f"stall-watch-{domain.name}", daemon=True)
            self._watcher.start()
        return info

    def _thaw_after_failure(self, domain: Domain, cpu: int, info: dict[str, Any]) -> None:
        """Thaw once the console shows the guest gave up on ``cpu`` (the first phase)
        and finished its bring-up: the vCPU then starts late, as in the seed. The thaw
        time goes into ``info`` and, through ``report``, into the boot's
        ``extra["hook"]``."""
        from harness.collect.vcpustats import BRINGUP_END

        line = f"CPU{cpu}: failed to come online"
        while not self._done.wait(0.2):
            try:
                text = domain.console_text()
            except Exception:  # the domain is going away: the timer or after_stop thaws
                return
            # after the whole bring-up, not at once: a CPU arriving while the guest brings
            # up the next one takes that one's boot data (two CPUs as one, then an Oops)
            if line in text and any(m in text for m in BRINGUP_END):
                with self._lock:
                    if self.freeze is not None and self.freeze.frozen:
                        self.freeze.thaw()
                        self.freeze = None
                        info["thawed_after_failure_at"] = time.time()
                return

    def _thaw(self) -> None:
        with self._lock:
            if self.freeze is not None:
                self.freeze.thaw()
                self.freeze = None

    def report(self) -> dict[str, Any]:
        return {"thawed_after_failure_at": self._info["thawed_after_failure_at"]} if \
            "thawed_after_failure_at" in self._info else {}

    def before_stop(self, domain: Domain, request: BootRequest) -> None:
        self._done.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self.freeze is not None and self.freeze.frozen:
                self.freeze.kill_process()
                self.freeze.thaw()
                self.freeze = None

    def after_stop(self, domain: Domain, request: BootRequest) -> None:
        self._done.set()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._thaw()


LOCAL_SCHEMES = ("qemu", "qemu+unix")


def _is_local(uri: str) -> bool:
    p = urlparse(uri)
    return p.scheme in LOCAL_SCHEMES and not p.hostname


def _is_embed(uri: str) -> bool:
    p = urlparse(uri)
    return p.scheme == "qemu" and not p.hostname and p.path == "/embed"


def _is_remote_with_ssh(lab: Lab, host: str) -> bool:
    spec = lab.host(host)
    return bool(urlparse(spec.uri).hostname) and spec.ssh is not None


def hooks_for(lab: Lab) -> Callable[[BootRequest], list[Any]] | None:
    """The boot loop's ``hooks_for`` for a lab: on every libvirt host a ``VcpuSampler``
    (per-vCPU host timing, ``harness.collect.vcpustats``), stall hooks for hosts and
    guests that carry a ``fault.stall``, and on ``qemu:///embed`` hosts a ``ReapHook``
    (see ``reaper.py``); None when the lab needs none (all hosts simulated)."""
    host_faults = {n: h.fault.stall for n, h in lab.hosts.items() if h.fault and h.fault.stall}
    guest_faults = {n: g.fault.stall for n, g in lab.guests.items() if g.fault and g.fault.stall}
    embed = {n for n, h in lab.hosts.items() if _is_embed(h.uri)}
    if embed and not enable_subreaper():
        embed = set()
    sampled = {n for n, h in lab.hosts.items() if not h.is_sim}
    if not host_faults and not guest_faults and not embed and not sampled:
        return None
    for name in host_faults:
        if not _is_local(lab.host(name).uri) and not _is_remote_with_ssh(lab, name):
            raise ConfigError(f"host {name!r}: a stall fault freezes a QEMU thread, on this "
                              "machine (a local qemu:/// URI) or over SSH on a remote host "
                              f"(give it an 'ssh:' section); {lab.host(name).uri!r} is "
                              "neither", lab.doc.loc(("hosts", name, "fault"), key=True))

    def for_request(request: BootRequest) -> list[Any]:
        hooks: list[Any] = [ReapHook()] if request.host_name in embed else []
        if request.host_name in sampled:  # before the stall hook: it stops QEMU first
            hooks.append(VcpuSampler())
        hf = host_faults.get(request.host_name)
        if hf is not None:
            hooks.append(StallHook(hf, f"host:{request.host_name}"))
        gf = guest_faults.get(request.guest_name)
        if gf is not None and (_is_local(request.host.uri)
                               or _is_remote_with_ssh(lab, request.host_name)):
            hooks.append(StallHook(gf, f"guest:{request.guest_name}"))
        return hooks

    return for_request
