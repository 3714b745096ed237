"""Scripted fakes of the backend protocols, for testing code that drives boots.

Each boot follows a ``Script`` (what the console prints, how many SSH attempts fail
before the guest answers, what the guest's files say, which fault happens). The backend
keeps a log of every call so a test can check that each defined domain was undefined.
Nothing here is random or timed: tests pass an injectable clock and sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.backend.base import BootRequest, CommandResult, Domain, GuestNotReady
from harness.collect import commands
from harness.collect.commands import CommandTimeout
from harness.errors import BackendError, CollectError, InfraError

OK_DMESG = """\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]
[    0.000000] Linux version 6.1.0-fake (fake@fake) #1 SMP
[    0.101000] smp: Bringing up secondary CPUs ...
{booted}[    0.{last:03d}000] smp: Brought up 1 node, {n} CPUs
"""


def ok_dmesg(vcpus: int) -> str:
    booted = "".join(
        f"[    0.{101 + i:03d}000] CPU{i}: Booted secondary processor 0x{i:010x} [0x410fd034]\n"
        for i in range(1, vcpus))
    return OK_DMESG.format(booted=booted, last=101 + vcpus, n=vcpus)


@dataclass(frozen=True)
class Script:
    """What one boot does. ``online=None`` means all defined vCPUs online."""

    console: str = "Booting Linux on physical CPU 0x0\nLinux version 6.1.0-fake\n"
    not_ready: int = 1  # SSH attempts answered with GuestNotReady before the login works
    never_ready: bool = False
    auth_refused: bool = False
    online: str | None = None
    present: str | None = None
    dmesg: str | None = None  # None: a clean bring-up of all vCPUs
    release: str = "6.1.0-fake"
    hang: str | None = None  # this command never returns (CommandTimeout)
    session_lost: str | None = None  # this command loses the SSH session
    define_error: str | None = None  # BackendError reason raised by define
    start_error: str | None = None
    stops: bool = False  # the domain powers off by itself after starting
    ignores_reboot: bool = False  # `reboot` in the guest does nothing (a hung shutdown)


class FakeDomain:
    def __init__(self, backend: FakeBackend, request: BootRequest, script: Script) -> None:
        self.backend = backend
        self.request = request
        self.name = request.domain_name
        self.script = script
        self.active = False
        self.paused = False
        self.defined = True
        self.console = ""
        self.attempts = 0
        self.boots = 0
        self.stale_logins = 0  # logins after a reboot that still reach the old boot

    def _log(self, what: str) -> None:
        self.backend.log.append((what, self.name))

    def start(self, paused: bool = False) -> None:
        self._log("start_paused" if paused else "start")
        if self.script.start_error:
            raise BackendError(f"start {self.name} refused", reason=self.script.start_error)
        self.active = not self.script.stops
        self.paused = paused
        self._boot()

    def _boot(self) -> None:
        self.boots += 1
        self.attempts = 0
        self.console += self.script.console

    def resume(self) -> None:
        self._log("resume")
        self.paused = False

    def destroy(self) -> None:
        self._log("destroy")
        self.active = False

    def _next(self) -> None:
        self.script = self.backend.next_script(self.request)
        self._boot()
        self.stale_logins = self.backend.reboot_lag

    def reset(self) -> None:
        self._log("reset")
        self._next()

    def reboot(self) -> None:
        self._log("reboot")
        self._next()

    def undefine(self) -> None:
        self._log("undefine")
        self.active = False
        self.defined = False
        self.backend.defined.pop(self.name, None)

    def is_active(self) -> bool:
        return self.active

    def console_text(self) -> str:
        return self.console

    def evidence(self) -> dict[str, str]:
        return {"qemu_log": f"fake qemu log of {self.name}\n"}

    def ssh_endpoint(self) -> tuple[str, int]:
        return "127.0.0.1", self.request.ssh_port or 22


class FakeBackend:
    """``Backend`` whose boots follow ``scripts`` (a list used in order, the last one
    repeated; or a function of the request)."""

    def __init__(self, scripts: Sequence[Script] | Callable[[BootRequest], Script] = (),
                 uri: str = "fake:///", reboot_lag: int = 0) -> None:
        self.uri = uri
        self.reboot_lag = reboot_lag  # logins that reach the old boot after a reboot
        self._scripts = scripts
        self._used = 0
        self._lock = threading.Lock()
        self.defined: dict[str, FakeDomain] = {}
        self.log: list[tuple[str, str]] = []
        self.closed = False

    def next_script(self, request: BootRequest) -> Script:
        with self._lock:
            if callable(self._scripts):
                return self._scripts(request)
            seq = list(self._scripts) or [Script()]
            s = seq[min(self._used, len(seq) - 1)]
            self._used += 1
            return s

    def define(self, request: BootRequest) -> Domain:
        script = self.next_script(request)
        self.log.append(("define", request.domain_name))
        if script.define_error:
            raise BackendError(f"define {request.domain_name} refused",
                               reason=script.define_error)
        if request.domain_name in self.defined:
            raise BackendError(f"domain {request.domain_name} already exists",
                               reason="define_refused")
        dom = FakeDomain(self, request, script)
        self.defined[dom.name] = dom
        return dom

    def lookup(self, name: str) -> Domain | None:
        return self.defined.get(name)

    def list_domains(self, prefix: str = "hb-") -> list[str]:
        return sorted(n for n in self.defined if n.startswith(prefix))

    def close(self) -> None:
        self.closed = True


class FakeChannel:
    def __init__(self, dom: FakeDomain) -> None:
        self.dom = dom
        self.closed = False
        self.boot = dom.boots  # the boot this login reached
        if dom.stale_logins > 0:
            dom.stale_logins -= 1
            self.boot -= 1

    def run(self, command: str, timeout: float) -> CommandResult:
        s = self.dom.script
        if command == s.hang:
            raise CommandTimeout(command, timeout)
        if command == s.session_lost:
            raise CollectError("session closed by peer")
        vcpus = self.dom.request.cell.vcpus
        everything = f"0-{vcpus - 1}" if vcpus > 1 else "0"
        texts = {
            commands.DMESG: s.dmesg if s.dmesg is not None else ok_dmesg(vcpus),
            commands.CPU_ONLINE: (s.online if s.online is not None else everything) + "\n",
            commands.CPU_PRESENT: (s.present if s.present is not None else everything) + "\n",
            commands.UNAME_R: s.release + "\n",
            commands.NPROC: f"{vcpus}\n",
            commands.BOOT_ID: f"{self.dom.name}-boot-{self.boot}\n",
            commands.REBOOT: "",
        }
        if command not in texts:
            return CommandResult(127, "", f"fake guest: unknown command {command!r}")
        if command == commands.REBOOT and not s.ignores_reboot:
            self.dom.reboot()
        return CommandResult(0, texts[command])

    def close(self) -> None:
        self.closed = True


class FakeConnector:
    """``Connector`` answering per the domain's script."""

    def __init__(self) -> None:
        self.channels: list[FakeChannel] = []

    def connect(self, domain: Domain, timeout: float) -> FakeChannel:
        assert isinstance(domain, FakeDomain)
        s = domain.script
        domain.attempts += 1
        if not domain.active or domain.paused:
            raise GuestNotReady(f"{domain.name} is not running")
        if s.never_ready or domain.attempts <= s.not_ready:
            raise GuestNotReady(f"{domain.name}: connection refused")
        if s.auth_refused:
            raise InfraError(f"login to {domain.name} refused", reason="ssh_auth")
        chan = FakeChannel(domain)
        self.channels.append(chan)
        return chan


@dataclass
class FakeClock:
    """A clock that only moves when ``sleep`` is called (or by ``step`` per reading)."""

    now: float = 1_000_000.0
    step: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        self.now += self.step
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
