"""What one boot attempt left behind: the typed boundary between the boot loop and the rest.

The boot loop drives the lifecycle and returns a frozen ``BootEvidence``; nothing in it is
interpreted yet. ``harness.outcome.judge`` turns it into the ``BootResult`` (pure), and the
store's ``Recorder`` writes the artifacts and the row. Everything a guest printed is kept
as text (bounded, and flagged when cut): no number in it is trusted before the decision
has parsed it, so nothing a guest prints can raise out of the decision or the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.model import Cell

# output kept per guest command, per stream (bytes, while streaming): a dmesg of a big
# guest is a few MB; anything beyond is a guest gone mad and is cut and flagged
STDOUT_LIMIT = 16 << 20
STDERR_LIMIT = 64 << 10
CONSOLE_LIMIT = 16 << 20


class CommandFault(StrEnum):
    """Why a guest command gave no exit status."""

    TIMEOUT = "timeout"  # no exit status within the command timeout (the guest hangs)
    NO_STATUS = "no_status"  # the channel closed without an exit status (guest side)
    SESSION_LOST = "session_lost"  # the SSH session itself went away (controller or link)


class SshErrorClass(StrEnum):
    """The class of the last SSH error the loop saw while waiting for the guest."""

    NOT_READY = "not_ready"  # refused, timed out, no banner: the guest is not up (yet)
    AUTH = "ssh_auth"  # the guest answers but refuses the login
    HOST_KEY = "ssh_host_key"  # unknown or changed host key
    CONFIG = "ssh_config"  # the controller's own files (key, known_hosts) are unusable


class Timeout(StrEnum):
    """Which of the cell's timeouts ended the boot, if one did."""

    BOOT = "boot"  # no SSH login within timeouts.boot
    COMMAND = "command"  # a guest command did not finish within timeouts.command
    SHUTDOWN = "shutdown"  # the guest did not go down within timeouts.shutdown


@dataclass(frozen=True)
class CommandEvidence:
    """One guest command as it ran: ``exit_status`` is None when it gave none (``fault``
    says why). ``stdout``/``stderr`` are what came back, cut at the stream's limit
    (``*_truncated``). ``duration_s`` is wall time on the controller."""

    name: str  # "online", "present", "dmesg", ... (collect/commands.py)
    command: str
    exit_status: int | None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    fault: CommandFault | None = None
    error: str = ""  # the fault's own words

    @property
    def succeeded(self) -> bool:
        return self.fault is None and self.exit_status == 0

    def failure(self) -> str:
        """``online: exit 1: Permission denied`` (empty when it succeeded)."""
        if self.fault is CommandFault.TIMEOUT:
            return f"{self.name}: {self.error or 'timed out'}"
        if self.fault is not None:
            return f"{self.name}: {self.error or self.fault.value}"
        if self.exit_status != 0:
            why = first_line(self.stderr) or first_line(self.stdout)
            return f"{self.name}: exit {self.exit_status}" + (f": {why}" if why else "")
        return ""


def first_line(text: str, limit: int = 160) -> str:
    """The first non-blank line, stripped and cut to ``limit`` characters (for reasons)."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


@dataclass(frozen=True)
class LoopSaw:
    """What the boot loop itself saw (its words, not the guest's output).

    ``failure``: the guest never became usable (console panic, domain stopped, no SSH in
    time). ``infra``: the lab or controller failed (``reason: message``), ``retryable``
    whether another attempt could help. ``timeout``: which timeout ended the boot.
    ``ssh_error``/``ssh_error_class``: the last SSH error met while waiting."""

    failure: str | None = None
    infra: str | None = None
    infra_reason: str | None = None
    retryable: bool = True
    timeout: Timeout | None = None
    ssh_error: str | None = None
    ssh_error_class: SshErrorClass | None = None
    ssh_attempts: int = 0


@dataclass(frozen=True)
class BootEvidence:
    """Everything one boot attempt produced, uninterpreted (see the module doc)."""

    run_id: str
    cell: Cell
    index: int
    attempt: int = 1
    domain: str = ""
    commands: tuple[CommandEvidence, ...] = ()
    console: str = ""  # this boot's part of the serial console
    console_truncated: bool = False
    host: tuple[tuple[str, str], ...] = ()  # host-side evidence: qemu_log, host_dmesg
    errors: tuple[tuple[str, str], ...] = ()  # cleanup errors: destroy_error, hook_error...
    timings: tuple[tuple[str, float], ...] = ()  # event -> unix time, in order
    hook: tuple[tuple[str, Any], ...] = ()  # what fault hooks reported
    earlier: tuple[str, ...] = ()  # infrastructure errors of earlier attempts
    saw: LoopSaw = field(default_factory=LoopSaw)
    # reboot: cpu-cycle: the trials run after this boot was ready (harness.cycle
    # .TrialEvidence, in order); each becomes a row of its own after the boot's
    trials: tuple[Any, ...] = ()

    def command(self, name: str) -> CommandEvidence | None:
        for c in self.commands:
            if c.name == name:
                return c
        return None

    def stdout(self, name: str) -> str:
        """The command's output when it succeeded, else ``""``."""
        c = self.command(name)
        return c.stdout if c is not None and c.succeeded else ""


def bounded(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was cut."""
    return (text, False) if len(text) <= limit else (text[:limit], True)
