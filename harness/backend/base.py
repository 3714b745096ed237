"""The backend interface: what the boot loop needs from a virtualization layer.

Implementations: ``libvirt.py`` (any libvirt URI; the only module that imports libvirt)
and ``sim.py`` (the simulated lab with known failure rates). The boot loop only sees
these protocols, so it runs unchanged against either.

One boot, as the boot loop drives it::

    dom = backend.define(request)          # domain XML from the typed model, overlay
    dom.start()                            # (paused=True lets a fault injector act)
    chan = connector.connect(dom, timeout) # readiness: a logged-in guest session
    out = chan.run(COMMAND, timeout)       # fixed commands only (collect/commands.py)
    dom.console_text(); dom.evidence()     # serial console, qemu log, host dmesg
    dom.destroy() / dom.reset() / ...      # per reboot mode
    dom.undefine()                         # at the end of the cell
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.inventory import GuestSpec, HostSpec
from harness.model import Cell


@dataclass(frozen=True)
class BootRequest:
    """Everything a backend needs to define one domain for one cell."""

    run_id: str
    cell: Cell
    host_name: str
    host: HostSpec
    guest_name: str
    guest: GuestSpec
    domain_name: str  # hb-<run>-<cell>-<n>, only [A-Za-z0-9_.-]
    boot_index: int  # 0-based boot number within the cell
    workdir: Path  # this boot's artifact folder on the controller
    ssh_port: int | None = None  # local user-mode networking: the forwarded port


@dataclass(frozen=True)
class CommandResult:
    """One command's answer. ``exit_status`` is None when the channel closed without one;
    ``*_truncated``: the stream went past the reader's limit and was cut there."""

    exit_status: int | None
    stdout: str
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@runtime_checkable
class Domain(Protocol):
    """One defined guest on one host."""

    name: str

    def start(self, paused: bool = False) -> None: ...

    def resume(self) -> None: ...

    def destroy(self) -> None:
        """Hard power-off; no error if already off."""

    def reset(self) -> None:
        """Hardware reset of a running domain."""

    def reboot(self) -> None:
        """Ask the guest to reboot (ACPI); the warm mode normally reboots over SSH."""

    def undefine(self) -> None:
        """Remove the definition and this boot's overlay; no error if already gone."""

    def is_active(self) -> bool: ...

    def console_text(self) -> str:
        """The serial console so far (empty when nothing was printed)."""

    def evidence(self) -> dict[str, str]:
        """Host-side evidence by name (``qemu_log``, ``host_dmesg``, ...)."""

    def ssh_endpoint(self) -> tuple[str, int]:
        """Where the guest's SSH server is reachable from the controller."""


class Backend(Protocol):
    """A connection to one host's virtualization layer."""

    uri: str

    def define(self, request: BootRequest) -> Domain: ...

    def lookup(self, name: str) -> Domain | None: ...

    def list_domains(self, prefix: str = "hb-") -> list[str]:
        """Names of defined domains that start with ``prefix`` (for gc)."""

    def close(self) -> None: ...


class GuestChannel(Protocol):
    """A logged-in session to a running guest."""

    def run(self, command: str, timeout: float) -> CommandResult: ...

    def close(self) -> None: ...


class Connector(Protocol):
    """How to log in to a guest: SSH (``collect/ssh.py``) or the simulated guest."""

    def connect(self, domain: Domain, timeout: float) -> GuestChannel:
        """One attempt. Raises ``GuestNotReady`` while the guest is not answering yet,
        ``InfraError`` (reason ``ssh_auth``) when it answers but refuses the login."""


class GuestNotReady(Exception):
    """The guest does not answer (yet): connection refused, timed out, no banner."""
