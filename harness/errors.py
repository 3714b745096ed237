"""One exception tree for the whole harness.

User mistakes (bad YAML, unknown names, bad CLI arguments) are ``ConfigError`` and are
printed without a traceback (exit status 2). ``EnvironmentFault`` is this machine failing
the run (disk full, database or reports folder unwritable: exit status 3).
``InfraError`` marks anything that is the lab's fault, not the
guest's: such a boot is never counted as a guest boot failure (house rule 6).
"""

from __future__ import annotations

from dataclasses import dataclass


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


@dataclass(frozen=True)
class Location:
    """A place in a user's file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ConfigError(HarnessError):
    """A user's input is wrong; the message says what and where."""

    def __init__(self, message: str, where: Location | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class ConfigErrors(ConfigError):
    """Several independent problems found in one pass (all reported at once)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class EnvironmentFault(HarnessError):
    """The controller's own environment failed (disk full, a database or folder that
    cannot be written): not the input's fault, not the guest's. ``resume`` is the command
    that continues the run once the cause is fixed (None when no run was started)."""

    def __init__(self, message: str, *, resume: str | None = None) -> None:
        self.resume = resume
        super().__init__(message + (f"; once fixed, continue with: {resume}" if resume else ""))


def environment_fault(exc: OSError, what: str = "", *, resume: str | None = None
                      ) -> EnvironmentFault:
    """An ``OSError`` (ENOSPC, EROFS, EACCES, ...) as an ``EnvironmentFault``."""
    name = getattr(exc, "filename", None)
    why = exc.strerror or str(exc)
    where = f" {name}" if name else ""
    return EnvironmentFault(f"{what or 'cannot write'}{where}: {why}", resume=resume)


class InfraError(HarnessError):
    """The lab failed (host, libvirt, network, SSH auth, disk), not the guest."""

    def __init__(self, message: str, *, reason: str = "infra", retryable: bool = True) -> None:
        self.reason = reason
        self.retryable = retryable
        super().__init__(message)


class BackendError(InfraError):
    """A virtualization backend refused or failed an operation."""


class CollectError(HarnessError):
    """Collecting evidence from a guest failed (not by itself an infrastructure error)."""
