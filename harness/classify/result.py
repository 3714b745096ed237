"""What the classifier returns (frozen records; the classifier itself is pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.model import GUEST_OUTCOMES, Finding, Outcome, Signature, SignatureCount

# verdicts of a text (a boot's outcome adds infra_error, which text alone never shows)
VERDICTS = GUEST_OUTCOMES


@dataclass(frozen=True)
class PsciError:
    cpu: int
    errno: int


@dataclass(frozen=True)
class BootReport:
    """One boot found in the text (a text may hold several)."""

    first_line: int
    kernel_release: str | None = None
    findings: tuple[Finding, ...] = ()
    cpus_brought_up: int | None = None
    offline_cpus: tuple[int, ...] = ()
    psci_errors: tuple[PsciError, ...] = ()
    panic: str | None = None
    signatures: tuple[SignatureCount, ...] = ()
    verdict: Outcome = Outcome.OK
    # secondary bring-up latency from dmesg timestamps (None when not visible)
    bringup_start_s: float | None = None  # "smp: Bringing up secondary CPUs"
    bringup_end_s: float | None = None  # last "Booted secondary processor"
    slowest_cpu: int | None = None
    slowest_cpu_s: float | None = None  # that CPU's gap after the previous one
    # the dmesg clock went back during bring-up: no latency is derived (flagged instead)
    timestamps_backwards: bool = False


@dataclass(frozen=True)
class Classification:
    """The whole text: the union over its boots, plus the cross-checks."""

    boots: tuple[BootReport, ...] = ()
    cpus_brought_up: int | None = None
    offline_cpus: tuple[int, ...] = ()
    psci_errors: tuple[PsciError, ...] = ()
    panic: str | None = None
    signatures: tuple[SignatureCount, ...] = ()
    verdict: Outcome = Outcome.OK
    findings: tuple[Finding, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    boots_omitted: int = 0  # boots of the text not kept in ``boots`` (the first and last are)
    psci_omitted: int = 0  # distinct PSCI errors beyond those listed

    @property
    def boots_total(self) -> int:
        return len(self.boots) + self.boots_omitted

    @property
    def last_boot(self) -> BootReport | None:
        return self.boots[-1] if self.boots else None

    def signature_list(self) -> tuple[Signature, ...]:
        return tuple(Signature(s.kind, s.title) for s in self.signatures)
