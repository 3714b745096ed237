"""The simulated backend: hosts whose URI is ``sim:///`` (``sim:///?seed=N``).

``SimBackend``/``SimDomain`` implement the backend protocols and ``SimConnector`` the
connector, so the boot loop, the collectors, the classifier and the store run unchanged;
only libvirt and SSH are replaced. Each boot's fate comes from the lab's ``sim:`` model
(``harness.sim.model``) and its text from ``harness.sim.text``. Infrastructure faults
(libvirt errors, a host that goes away, a slow host, SSH refused) raise the same
exceptions the real backend and connector raise, so they end up as ``infra_error``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.backend.base import BootRequest, CommandResult, Domain, GuestNotReady
from harness.collect import commands
from harness.errors import BackendError, InfraError
from harness.inventory import HostSpec, Lab
from harness.model import Outcome
from harness.sim import text
from harness.sim.clock import SimClock
from harness.sim.model import Fate, SimModel, fate, load_sim_model, uri_seed


@dataclass
class SimDomain:
    """One simulated guest. Each boot of it has its own fate: the boot it was defined for
    (``index``), and after every warm reboot or reset the next index, drawn exactly as a
    cold boot of that index would be, so results do not depend on how boots are chunked."""

    name: str
    fate: Fate
    vcpus: int
    release: str | None
    clock: SimClock
    backend: SimBackend
    active: bool = False
    started_at: float = 0.0
    guest: str = ""
    index: int = 0
    _texts: dict[str, str] = field(default_factory=dict)
    _cuts: list[tuple[float, int]] = field(default_factory=list)
    _earlier: str = ""  # the console of the boots before this one (it accumulates)

    def _check_host(self) -> None:
        self.backend.check_alive()

    def start(self, paused: bool = False) -> None:
        self._check_host()
        if self.fate.infra == "libvirt":
            raise BackendError(f"libvirt: internal error: process exited while connecting "
                               f"to monitor (simulated, domain {self.name})", reason="libvirt")
        if self.fate.infra == "slow":
            self.clock.sleep(30.0)
            raise BackendError(f"libvirt: Timed out during operation: cannot acquire state "
                               f"change lock (simulated slow host {self.backend.host_name})",
                               reason="host_slow")
        self.active = True
        self.started_at = self.clock.now()

    def resume(self) -> None:
        self._check_host()

    def destroy(self) -> None:
        self.active = False

    def reset(self) -> None:
        """A reboot of the running guest: the next boot index, with its own fate."""
        self._check_host()
        if self.started_at:
            self._earlier += self._full_console()
        self.index += 1
        b = self.backend
        self.fate = fate(b.model, seed=b.seed, host=b.host_name, attrs=b.host.attributes,
                         guest=self.guest, vcpus=self.vcpus, index=self.index)
        self._texts.clear()
        self._cuts = []
        self.started_at = self.clock.now()

    def reboot(self) -> None:
        self.reset()

    def undefine(self) -> None:
        self.active = False
        self.backend.forget(self.name)

    def is_active(self) -> bool:
        return self.active

    @property
    def ready_at(self) -> float:
        return self.started_at + self.fate.boot_seconds

    def console_text(self) -> str:
        """The console so far: kernel lines up to the guest's uptime (their timestamps),
        the login prompt once it is up, so a panic shows when it would happen."""
        if not self.started_at:
            return ""
        full = self._full_console()
        uptime = self.clock.now() - self.started_at
        if uptime >= self.fate.boot_seconds - 1e-3:  # unix-time floats: ~1e-7 s steps
            return self._earlier + full
        k = bisect.bisect_right(self._cuts, (uptime, len(full)))
        return self._earlier + (full[:self._cuts[k - 1][1]] if k else "")

    def _full_console(self) -> str:
        if "console" not in self._texts:
            full = text.console(self.release, self.vcpus, self.fate, hostname=self.name,
                                kernel_log=None if self.fate.failure else self.dmesg())
            self._texts["console"] = full
            self._cuts = text.reveal_points(full)
        return self._texts["console"]

    def dmesg(self) -> str:
        if "dmesg" not in self._texts:
            self._texts["dmesg"] = text.dmesg(self.release, self.vcpus, self.fate)
        return self._texts["dmesg"]

    def evidence(self) -> dict[str, str]:
        return {}  # no QEMU, no host kernel: nothing to keep

    def ssh_endpoint(self) -> tuple[str, int]:
        return ("sim", 22)


class SimBackend:
    """One simulated host."""

    def __init__(self, lab: Lab, host_name: str, model: SimModel, clock: SimClock) -> None:
        self.host_name = host_name
        self.host: HostSpec = lab.host(host_name)
        self.uri = self.host.uri
        self.lab = lab
        self.model = model
        self.clock = clock
        seed = uri_seed(self.uri)
        self.seed = model.seed if seed is None else seed
        self.faults = model.hosts.get(host_name)
        self._lock = threading.Lock()
        self._domains: dict[str, SimDomain] = {}
        self._attempts: dict[tuple[str, int], int] = {}
        self.boots = 0  # domains defined so far (for ``gone_after``)

    def check_alive(self) -> None:
        gone = self.faults.gone_after if self.faults else None
        if gone is not None and self.boots > gone:
            raise BackendError(f"libvirt: cannot connect to {self.uri} on host "
                               f"{self.host_name}: no route to host (simulated)",
                               reason="host_gone")

    def define(self, request: BootRequest) -> Domain:
        with self._lock:
            if request.domain_name in self._domains:  # as libvirt: a name is defined once
                raise BackendError(f"sim {self.uri}: define {request.domain_name}: a domain "
                                   "with this name exists already", reason="define_refused",
                                   retryable=False)
            self.boots += 1
            key = (request.cell.id, request.boot_index)
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
        self.check_alive()
        cell = request.cell
        f = fate(self.model, seed=self.seed, host=request.host_name,
                 attrs=self.host.attributes, guest=request.guest_name, vcpus=cell.vcpus,
                 index=request.boot_index, attempt=attempt)
        dom = SimDomain(request.domain_name, f, cell.vcpus, request.guest.kernel_release,
                        self.clock, self, guest=request.guest_name, index=request.boot_index)
        with self._lock:
            self._domains[dom.name] = dom
        return dom

    def lookup(self, name: str) -> Domain | None:
        self.check_alive()
        return self._domains.get(name)

    def list_domains(self, prefix: str = "hb-") -> list[str]:
        self.check_alive()
        return sorted(n for n in self._domains if n.startswith(prefix))

    def forget(self, name: str) -> None:
        with self._lock:
            self._domains.pop(name, None)

    def close(self) -> None:
        pass


class SimChannel:
    """A logged-in session to a simulated guest: answers the fixed commands."""

    def __init__(self, domain: SimDomain) -> None:
        self.domain = domain

    def run(self, command: str, timeout: float) -> CommandResult:
        d = self.domain
        if not d.active:
            raise GuestNotReady(f"{d.name}: connection closed")
        answer = _ANSWERS.get(command)
        if answer is not None:
            return CommandResult(0, answer(d))
        if command == commands.REBOOT:
            d.reset()
            return CommandResult(0, "")
        return CommandResult(127, "", f"sh: {command.split()[0]}: command not found\n")

    def close(self) -> None:
        pass


_ANSWERS: dict[str, Callable[[SimDomain], str]] = {
    commands.DMESG: SimDomain.dmesg,
    commands.CPU_ONLINE: lambda d: text.cpu_list(text.online_cpus(d.vcpus, d.fate)) + "\n",
    commands.CPU_PRESENT: lambda d: f"0-{d.vcpus - 1}\n" if d.vcpus > 1 else "0\n",
    commands.UNAME_R: lambda d: f"{d.release or 'unknown'}\n",
    commands.NPROC: lambda d: f"{len(text.online_cpus(d.vcpus, d.fate))}\n",
}


class SimConnector:
    """Logs in to a simulated guest once it is up; a failing boot never answers."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock

    def connect(self, domain: Domain, timeout: float) -> SimChannel:
        if not isinstance(domain, SimDomain):
            raise TypeError("SimConnector only connects to simulated domains")
        domain.backend.check_alive()
        if not domain.active:
            raise GuestNotReady(f"{domain.name}: not running")
        if domain.fate.failure:
            self.clock.sleep(timeout)
            raise GuestNotReady(f"{domain.name}: connection timed out")
        wait = domain.ready_at - self.clock.now()
        if wait > 0:
            self.clock.sleep(min(wait, timeout))
            if wait > timeout:
                raise GuestNotReady(f"{domain.name}: connection refused")
            self.clock.sync(domain.ready_at)  # no float drift: the guest is up now
        if domain.fate.infra == "ssh_refused":
            raise InfraError(f"ssh: {domain.name}: authentication failed (publickey) "
                             "(simulated)", reason="ssh_auth")
        return SimChannel(domain)


@dataclass
class SimLab:
    """The simulated parts of a lab: one backend per simulated host, one connector."""

    lab: Lab
    clock: SimClock
    model: SimModel = field(init=False)
    _backends: dict[str, SimBackend] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.model = load_sim_model(self.lab)
        self.connector = SimConnector(self.clock)

    def backend_for(self, host: str) -> SimBackend:
        with self._lock:
            if host not in self._backends:
                self._backends[host] = SimBackend(self.lab, host, self.model, self.clock)
            return self._backends[host]

    def connector_for(self, host: str, guest: str) -> SimConnector:
        return self.connector

    def truth(self) -> Callable[[str, str, int, int], Outcome]:
        """``(host, guest, vcpus, index) -> outcome`` the guest shows once the
        infrastructure lets it boot (the ground truth, for tests)."""

        def outcome(host: str, guest: str, vcpus: int, index: int) -> Outcome:
            b = self.backend_for(host)
            return fate(self.model, seed=b.seed, host=host, attrs=b.host.attributes,
                        guest=guest, vcpus=vcpus, index=index, infra=False).outcome

        return outcome
