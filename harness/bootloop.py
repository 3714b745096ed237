"""The boot loop: boots of one cell, one after another, on one host slot.

One boot: define -> start (paused when fault hooks are present: ``before_resume`` then
resume) -> wait until SSH accepts the login, watching the console meanwhile so a panic
fails the boot at once -> collect (fixed commands) -> stop per the reboot mode -> write
the artifacts -> classify -> record to the sink -> yield the ``BootResult``.

Reboot modes: ``cold`` defines a new domain per boot (fresh overlay and NVRAM); ``warm``
(``reboot`` in the guest) and ``reset`` (libvirt reset) reuse one domain for the whole
chunk. Every domain defined here is undefined again, also on exceptions and Ctrl-C.

Infrastructure errors are retried inside ``run_chunk`` with exponential backoff (the
same boot index, ``attempt`` counts up) and are never counted as guest failures. A host
with too many infrastructure errors in a row is set aside (``host_failed``) and
``run_chunk`` returns early on it; the scheduler then stops giving it work.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from harness.backend.base import Backend, BootRequest, Connector, Domain, GuestChannel
from harness.backend.base import GuestNotReady as GuestNotReady
from harness.classify.result import Classification
from harness.collect import commands
from harness.collect.commands import CommandTimeout
from harness.collect.console import watch
from harness.cycle import TrialEvidence
from harness.errors import CollectError, InfraError
from harness.evidence import (
    CONSOLE_LIMIT,
    BootEvidence,
    CommandEvidence,
    CommandFault,
    LoopSaw,
    SshErrorClass,
    Timeout,
    bounded,
)
from harness.inventory import Lab
from harness.model import BootResult, Cell, Outcome, RebootMode, safe_name
from harness.outcome import Classifier, judge
from harness.store.recorder import ARTIFACT_FILES as ARTIFACT_FILES
from harness.store.recorder import Recorder, ResultSink, artifact_names
from harness.store.recorder import meta_json as meta_json


class BootHook(Protocol):
    """Acts on a domain around its start, e.g. the local lab's vCPU stall injector.

    When any hook is present the domain is started paused; ``before_resume`` runs, then
    the domain is resumed. Whatever dict it returns is kept in ``BootResult.extra``
    under ``hook``. ``after_stop`` runs once the boot is over (domain stopped). A hook
    may also have ``before_stop(domain, request)``, called just before the destroy, and
    ``report() -> dict``, called after ``after_stop`` and merged into ``hook`` too (e.g.
    the per-vCPU host timing of ``harness.collect.vcpustats``)."""

    def before_resume(self, domain: Domain, request: BootRequest) -> dict[str, Any] | None: ...

    def after_stop(self, domain: Domain, request: BootRequest) -> None: ...


class HostHealth:
    """Consecutive infrastructure errors per host; at ``limit`` the host is set aside."""

    def __init__(self, limit: int = 5) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._streak: dict[str, int] = {}
        self._failed: dict[str, str] = {}

    def ok(self, host: str) -> None:
        with self._lock:
            self._streak[host] = 0

    def infra(self, host: str, reason: str) -> bool:
        """Count one error; True when this one set the host aside."""
        with self._lock:
            n = self._streak.get(host, 0) + 1
            self._streak[host] = n
            if n >= self.limit and host not in self._failed:
                self._failed[host] = f"{n} infrastructure errors in a row, last: {reason}"
                return True
            return False

    def failed(self, host: str) -> bool:
        with self._lock:
            return host in self._failed

    def why(self, host: str) -> str | None:
        with self._lock:
            return self._failed.get(host)

    def set_aside(self) -> dict[str, str]:
        with self._lock:
            return dict(self._failed)


class _Stopped(Exception):
    """Stop was requested (Ctrl-C, SIGTERM): abandon the boot in progress."""


class _GuestFailed(Exception):
    """The guest never became usable (the loop's reason)."""

    def __init__(self, message: str, timeout: Timeout | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


@dataclass
class _Boot:
    """What one boot attempt saw (mutable while it runs; ``evidence`` freezes it)."""

    index: int
    attempt: int
    request: BootRequest | None = None
    timings: dict[str, float] = field(default_factory=dict)
    commands: list[CommandEvidence] = field(default_factory=list)
    console: str = ""
    evidence: dict[str, str] = field(default_factory=dict)  # host evidence, *_error
    hook: dict[str, Any] = field(default_factory=dict)
    infra: str | None = None
    infra_reason: str | None = None
    infra_retryable: bool = True
    failure: str | None = None
    timeout: Timeout | None = None
    ssh_error: str | None = None
    ssh_error_class: SshErrorClass | None = None
    ssh_attempts: int = 0
    earlier: list[str] = field(default_factory=list)
    hooks: list[BootHook] = field(default_factory=list)
    trials: list[TrialEvidence] = field(default_factory=list)  # cpu-cycle mode

    def infra_error(self, exc: InfraError) -> None:
        self.infra = f"{exc.reason}: {exc}"
        self.infra_reason = exc.reason
        self.infra_retryable = exc.retryable
        if exc.reason in ("ssh_auth", "ssh_host_key"):
            self.ssh_error = str(exc)
            self.ssh_error_class = SshErrorClass(exc.reason)

    def collected(self, name: str) -> str:
        for c in self.commands:
            if c.name == name:
                return c.stdout if c.succeeded else ""
        return ""

    def freeze(self, run_id: str, cell: Cell) -> BootEvidence:
        console, cut = bounded(self.console, CONSOLE_LIMIT)
        host = tuple((k, v) for k, v in sorted(self.evidence.items())
                     if not k.endswith("_error"))
        errors = tuple((k, v) for k, v in sorted(self.evidence.items())
                       if k.endswith("_error"))
        return BootEvidence(
            run_id=run_id, cell=cell, index=self.index, attempt=self.attempt,
            domain=self.request.domain_name if self.request is not None else "",
            commands=tuple(self.commands), console=console, console_truncated=cut,
            host=host, errors=errors,
            timings=tuple(sorted(self.timings.items(), key=lambda kv: kv[1])),
            hook=tuple(sorted(self.hook.items())), earlier=tuple(self.earlier),
            trials=tuple(self.trials),
            saw=LoopSaw(failure=self.failure, infra=self.infra,
                        infra_reason=self.infra_reason, retryable=self.infra_retryable,
                        timeout=self.timeout, ssh_error=self.ssh_error,
                        ssh_error_class=self.ssh_error_class,
                        ssh_attempts=self.ssh_attempts))


_port_lock = threading.Lock()
_ports_in_use: set[int] = set()


def free_local_port() -> int:
    """A free TCP port on 127.0.0.1, not handed out before in this process."""
    with _port_lock:
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _ports_in_use:
                _ports_in_use.add(port)
                return port
    raise InfraError("no free local TCP port for the SSH forward", reason="no_port")


def release_local_port(port: int) -> None:
    with _port_lock:
        _ports_in_use.discard(port)


def domain_name(run_id: str, cell: Cell, index: int) -> str:
    return f"hb-{safe_name(run_id)}-{cell.folder}-{index}"


class BootLoop:
    def __init__(
        self,
        backend_for: Callable[[str], Backend],
        connector_for: Callable[[str, str], Connector],
        sink: ResultSink,
        lab: Lab,
        workdir: Path,
        run_id: str,
        hooks_for: Callable[[BootRequest], list[BootHook]] | None = None,
        classify: Classifier | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        *,
        health: HostHealth | None = None,
        max_attempts: int = 3,
        backoff_s: float = 2.0,
        backoff_max_s: float = 60.0,
        poll_s: float = 1.0,
        ssh_port_for: Callable[[str], int | None] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.backend_for = backend_for
        self.connector_for = connector_for
        self.sink = sink
        self.recorder = Recorder(sink, workdir)
        self.lab = lab
        self.workdir = Path(workdir)
        self.run_id = run_id
        self.hooks_for = hooks_for
        self._classify = classify
        self.clock = clock
        # deadlines: a monotonic clock, or the injected clock when one is given
        self.monotonic = monotonic or (time.monotonic if clock is time.time else clock)
        self._stop = threading.Event()
        self._sleep = sleep
        self.health = health or HostHealth()
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.poll_s = poll_s
        self.ssh_port_for = ssh_port_for or self._default_port

    # -- control -----------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop at the next check: the boot in progress is abandoned (not recorded), its
        domain destroyed and undefined; results already recorded stay."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def host_failed(self, host: str) -> bool:
        return self.health.failed(host)

    def sleep(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            if self._stop.is_set():
                raise _Stopped
        elif self._stop.wait(seconds):
            raise _Stopped

    def _default_port(self, host_name: str) -> int | None:
        return free_local_port() if self.lab.host(host_name).network.type == "user" else None

    def request(self, cell: Cell, index: int, *, name_index: int | None = None,
                ssh_port: int | None = None) -> BootRequest:
        """The request for boot ``index``; the domain is named after ``name_index``
        (the chunk's first boot when one domain is reused) and keeps its SSH port."""
        boot_dir = self.workdir / cell.folder / str(index)
        return BootRequest(
            run_id=self.run_id, cell=cell, host_name=cell.host, host=self.lab.host(cell.host),
            guest_name=cell.guest, guest=self.lab.guest(cell.guest),
            domain_name=domain_name(self.run_id, cell, index if name_index is None
                                    else name_index),
            boot_index=index, workdir=boot_dir,
            ssh_port=ssh_port if ssh_port is not None else self.ssh_port_for(cell.host))

    # -- the chunk ---------------------------------------------------------------------

    def run_chunk(self, cell: Cell, indices: Sequence[int]
                  ) -> Generator[BootResult, None, None]:
        """Boot ``indices`` of ``cell`` one after another; record and yield each result.
        Returns early when a stop is requested or the host is set aside."""
        if cell.reboot in (RebootMode.COLD, RebootMode.CPU_CYCLE):
            yield from self._cold_chunk(cell, indices)
        else:
            yield from self._reuse_chunk(cell, indices)

    def _retrying(self, cell: Cell, index: int, one: Callable[[int], _Boot]
                  ) -> tuple[BootEvidence, BootResult] | None:
        """Attempts of one boot until one is not an infrastructure error (or the attempts,
        the host or the run run out): its evidence and the result judged from it."""
        earlier: list[str] = []
        attempt = 1
        while True:
            if self._stop.is_set() or self.health.failed(cell.host):
                return None
            try:
                boot = one(attempt)
            except _Stopped:
                return None
            boot.earlier = earlier
            ev = boot.freeze(self.run_id, cell)
            result = judge(ev, self._classify, artifact_names(ev))
            if result.outcome is not Outcome.INFRA_ERROR:
                self.health.ok(cell.host)
                return ev, result
            self.health.infra(cell.host, result.reason)
            if (not ev.saw.retryable or attempt >= self.max_attempts
                    or self.health.failed(cell.host)):
                return ev, result
            earlier = [*earlier, result.reason]
            try:
                self.sleep(min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))
            except _Stopped:
                return None
            attempt += 1

    def _cold_chunk(self, cell: Cell, indices: Sequence[int]) -> Iterator[BootResult]:
        for index in indices:
            done = self._retrying(cell, index, partial(self._cold_boot, cell, index))
            if done is None:
                return
            ev, result = done
            yield self._finish(ev, result)
            if ev.trials:
                yield from self._finish_trials(cell, ev, result)

    def _finish_trials(self, cell: Cell, ev: BootEvidence, result: BootResult
                       ) -> Iterator[BootResult]:
        """Record the cpu-cycle trials of a boot (``harness.cycle``), after the boot:
        each its own folder (``dmesg.txt``: the trial's kernel messages; ``console.log``
        when the guest stopped answering; ``meta.json``) and row."""
        from harness import cycle
        from harness.store.recorder import boot_folder

        history = cycle.CpuHistory()
        history.note_boot(result.index, result.offline_cpus,
                          cycle.failure_messages(result.findings))
        before = result.online_cpus
        for n, trial_ev in enumerate(ev.trials):
            index = cycle.trial_index(cell, ev.index, n)
            rel = boot_folder(cell, index)
            folder = os.path.join(self.recorder.run_dir, rel)
            os.makedirs(folder, exist_ok=True)
            out = cycle.parse_trial(trial_ev.stdout)
            texts = {"dmesg": out.dmesg if out is not None else trial_ev.stdout}
            if trial_ev.failure is not None:
                texts["console"] = trial_ev.console
            artifacts = {name: f"{rel}/{ARTIFACT_FILES[name]}" for name in texts}
            artifacts["meta"] = f"{rel}/meta.json"
            for name, text in texts.items():
                with open(os.path.join(self.recorder.run_dir, artifacts[name]), "w",
                          encoding="utf-8", errors="replace") as f:
                    f.write(text)
            trial = cycle.trial_result(self.run_id, cell, ev.index, n, trial_ev, history,
                                       ev.domain, artifacts, classify=self._trial_classify,
                                       before=before)
            if trial.online_cpus is not None:
                before = trial.online_cpus
            with open(os.path.join(self.recorder.run_dir, artifacts["meta"]), "w",
                      encoding="utf-8", errors="replace") as f:
                f.write(meta_json(trial, {}))
            self.recorder.sink.record(trial)
            yield trial

    def _trial_classify(self, text: str, expected_cpus: int,
                        online: str | None = None) -> Classification:
        if self._classify is not None:
            return self._classify(text, expected_cpus=expected_cpus, online=online)
        from harness.classify import classify

        return classify(text, expected_cpus=expected_cpus, online=online)

    def _cold_boot(self, cell: Cell, index: int, attempt: int) -> _Boot:
        boot = _Boot(index, attempt)
        dom: Domain | None = None
        try:
            backend = self.backend_for(cell.host)
            boot.request = req = self.request(cell, index)
            req.workdir.mkdir(parents=True, exist_ok=True)
            boot.timings["define"] = self.clock()
            dom = backend.define(req)
            self._start(dom, req, boot)
            chan = self._wait_ready(dom, cell, boot, console_from=0)
            self._collect(chan, cell, boot)
            if cell.reboot is RebootMode.CPU_CYCLE:
                from harness.cycle import run_cycles

                boot.trials = run_cycles(chan, cell, console=dom.console_text,
                                         clock=self.clock, stopping=self._stop.is_set)
            chan.close()
        except _GuestFailed as exc:
            boot.failure = str(exc)
            boot.timeout = exc.timeout
        except InfraError as exc:
            boot.infra_error(exc)
        finally:
            if dom is not None:
                self._gather(dom, boot, 0)
                self._teardown(dom, boot, undefine=True)
            elif boot.request is not None and boot.request.ssh_port is not None:
                release_local_port(boot.request.ssh_port)  # define failed
        return boot

    def _reuse_chunk(self, cell: Cell, indices: Sequence[int]) -> Iterator[BootResult]:
        state: dict[str, Any] = {"dom": None, "chan": None, "offset": 0, "first": None,
                                 "port": None}
        try:
            for index in indices:
                done = self._retrying(cell, index, partial(self._reuse_boot, cell, index,
                                                           state=state))
                if done is None:
                    return
                yield self._finish(*done)
        finally:
            if state["chan"] is not None:
                state["chan"].close()
            if state["dom"] is not None:
                self._teardown(state["dom"], _Boot(-1, 0, request=state.get("req"),
                                                   hooks=state.get("hooks", [])),
                               undefine=True)

    def _reuse_boot(self, cell: Cell, index: int, attempt: int, *,
                    state: dict[str, Any]) -> _Boot:
        boot = _Boot(index, attempt)
        dom: Domain | None = state["dom"]
        try:
            if dom is None:
                state["first"] = index
                state["port"] = self.ssh_port_for(cell.host)
            boot.request = req = self.request(cell, index, name_index=state["first"],
                                              ssh_port=state["port"])
            req.workdir.mkdir(parents=True, exist_ok=True)
            if dom is None:
                boot.timings["define"] = self.clock()
                dom = state["dom"] = self.backend_for(cell.host).define(req)
                state["req"] = req
                self._start(dom, req, boot)
                state["hooks"] = boot.hooks
                state["offset"] = 0
            else:
                boot.hooks = state.get("hooks", [])
                state["offset"] = len(dom.console_text())
                self._reboot(dom, cell, state.pop("chan"), boot)
                state["chan"] = None
            chan = self._wait_ready(dom, cell, boot, console_from=state["offset"],
                                    old_boot_id=state.get("boot_id"))
            state["chan"] = chan
            self._collect(chan, cell, boot)
            state["boot_id"] = boot.collected("boot_id").strip() or None
        except _GuestFailed as exc:
            boot.failure = str(exc)
            boot.timeout = exc.timeout
        except InfraError as exc:
            boot.infra_error(exc)
        finally:
            if dom is not None:
                self._gather(dom, boot, state["offset"])
                if (boot.failure or boot.infra or self._stop.is_set()
                        or any(c.fault is not None for c in boot.commands)):
                    # a domain in an unknown state is not reused: the next boot starts fresh
                    if state["chan"] is not None:
                        state["chan"].close()
                    state["chan"] = None
                    state["dom"] = None
                    state["boot_id"] = None
                    self._teardown(dom, boot, undefine=True)
            elif state["port"] is not None:
                release_local_port(state["port"])  # define failed
                state["port"] = None
        return boot

    # -- steps -------------------------------------------------------------------------

    def _start(self, dom: Domain, req: BootRequest, boot: _Boot) -> None:
        boot.hooks = hooks = self.hooks_for(req) if self.hooks_for is not None else []
        boot.timings["start"] = self.clock()
        dom.start(paused=bool(hooks))
        if hooks:
            for h in hooks:
                extra = h.before_resume(dom, req)
                if extra:
                    boot.hook.update(extra)
            dom.resume()
            boot.timings["resume"] = self.clock()
        self._check_stop()

    def _reboot(self, dom: Domain, cell: Cell, chan: GuestChannel | None, boot: _Boot) -> None:
        boot.timings["start"] = self.clock()
        if cell.reboot is RebootMode.RESET:
            dom.reset()
        elif chan is not None:
            try:
                chan.run(commands.REBOOT, cell.timeouts.command)
            except CollectError:
                dom.reboot()
        else:
            dom.reboot()
        if chan is not None:
            chan.close()
        # let the old sshd go away before polling, so we do not log in to the old boot
        self.sleep(min(self.poll_s * 2, cell.timeouts.boot))

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _wait_ready(self, dom: Domain, cell: Cell, boot: _Boot, console_from: int,
                    old_boot_id: str | None = None) -> GuestChannel:
        """Poll SSH until the login works. With ``old_boot_id`` (warm/reset), a login to
        the guest's previous boot (its sshd not yet gone) does not count."""
        connector = self.connector_for(cell.host, cell.guest)
        deadline = self.monotonic() + cell.timeouts.boot
        # warm/reset: the old boot must be gone within timeouts.shutdown, else a reset
        shutdown_by = (self.monotonic() + cell.timeouts.shutdown
                       if old_boot_id is not None else None)
        while True:
            self._check_stop()
            state = watch(dom.console_text()[console_from:])
            if state.lines and "first_console" not in boot.timings:
                boot.timings["first_console"] = self.clock()
            if state.kernel_started and "kernel_started" not in boot.timings:
                boot.timings["kernel_started"] = self.clock()
            if state.failed:
                raise _GuestFailed(state.failed)
            if not dom.is_active():
                raise _GuestFailed("the domain stopped before SSH came up")
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                raise _GuestFailed(f"no SSH within {cell.timeouts.boot:g}s", Timeout.BOOT)
            boot.ssh_attempts += 1
            try:
                chan = connector.connect(dom, min(cell.timeouts.ssh, remaining))
            except GuestNotReady as exc:
                boot.ssh_error = str(exc) or type(exc).__name__
                boot.ssh_error_class = SshErrorClass.NOT_READY
                remaining = deadline - self.monotonic()
                if remaining > 0:
                    self.sleep(min(self.poll_s, remaining))
                continue
            if old_boot_id is not None and self._same_boot(chan, cell, old_boot_id):
                chan.close()
                if shutdown_by is not None and self.monotonic() >= shutdown_by:
                    # still the old boot after timeouts.shutdown: the guest did not go
                    # down when asked; a hardware reset does what the reboot did not
                    boot.timings["shutdown_timeout"] = self.clock()
                    boot.timeout = Timeout.SHUTDOWN
                    shutdown_by = None
                    dom.reset()
                self.sleep(min(self.poll_s, max(deadline - self.monotonic(), 0)))
                continue
            boot.timings["ssh_up"] = self.clock()
            return chan

    @staticmethod
    def _same_boot(chan: GuestChannel, cell: Cell, old_boot_id: str) -> bool:
        try:
            now = chan.run(commands.BOOT_ID, cell.timeouts.command).stdout.strip()
        except CollectError:
            return True  # the old boot going down under us
        return now == old_boot_id

    def _collect(self, chan: GuestChannel, cell: Cell, boot: _Boot) -> None:
        """Run the fixed commands; each one's answer is kept as it came (exit status,
        both streams, how long). A command that gives no answer ends the collection: the
        session is gone or the guest hangs, and the rest would only wait as long again."""
        for name, cmd in commands.GUEST_COLLECT:
            self._check_stop()
            t0 = self.monotonic()
            try:
                res = chan.run(cmd, cell.timeouts.command)
            except CommandTimeout as exc:
                boot.commands.append(CommandEvidence(
                    name, cmd, None, duration_s=self.monotonic() - t0,
                    fault=CommandFault.TIMEOUT, error=str(exc)))
                boot.timeout = Timeout.COMMAND
                break
            except CollectError as exc:
                boot.commands.append(CommandEvidence(
                    name, cmd, None, duration_s=self.monotonic() - t0,
                    fault=CommandFault.SESSION_LOST, error=str(exc)))
                break
            boot.commands.append(CommandEvidence(
                name, cmd, res.exit_status, res.stdout, res.stderr, res.stdout_truncated,
                res.stderr_truncated, self.monotonic() - t0,
                CommandFault.NO_STATUS if res.exit_status is None else None,
                "the channel closed without an exit status" if res.exit_status is None
                else ""))
        boot.timings["collected"] = self.clock()

    def _gather(self, dom: Domain, boot: _Boot, console_from: int) -> None:
        """Console and host-side evidence; best effort (the boot is recorded anyway)."""
        try:
            boot.console = dom.console_text()[console_from:]
        except InfraError as exc:
            boot.evidence["console_error"] = str(exc)
        try:
            boot.evidence.update(dom.evidence())
        except InfraError as exc:
            boot.evidence["evidence_error"] = str(exc)

    def _teardown(self, dom: Domain, boot: _Boot, *, undefine: bool) -> None:
        if boot.request is not None:
            for h in boot.hooks:  # optional: e.g. stop QEMU before thawing a frozen vCPU
                before_stop = getattr(h, "before_stop", None)
                if before_stop is None:
                    continue
                try:
                    before_stop(dom, boot.request)
                except Exception as exc:  # a hook failing must not leak the domain
                    boot.evidence["hook_error"] = repr(exc)
        try:
            dom.destroy()
        except InfraError as exc:
            boot.evidence["destroy_error"] = str(exc)
        boot.timings["stopped"] = self.clock()
        if boot.request is not None:
            for h in boot.hooks:
                try:
                    h.after_stop(dom, boot.request)
                    report = getattr(h, "report", None)  # optional: what it measured
                    if report is not None:
                        boot.hook.update(report() or {})
                except Exception as exc:  # a hook failing must not leak the domain
                    boot.evidence["hook_error"] = repr(exc)
        if undefine:
            try:
                dom.undefine()
            except InfraError as exc:
                boot.evidence["undefine_error"] = str(exc)
            if boot.request is not None and boot.request.ssh_port is not None:
                release_local_port(boot.request.ssh_port)

    # -- result ------------------------------------------------------------------------

    def _finish(self, ev: BootEvidence, result: BootResult) -> BootResult:
        self.recorder.record(ev, result)
        return result
