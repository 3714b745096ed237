"""Frozen records shared by every stage: cells, findings, boot results.

Every stage reads and writes these; none of them does I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """The class of one boot. ``INFRA_ERROR`` is never a guest failure."""

    OK = "ok"
    VCPU_OFFLINE = "vcpu_offline"
    BOOT_FAILURE = "boot_failure"
    INFRA_ERROR = "infra_error"


GUEST_OUTCOMES = (Outcome.OK, Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE)


class RebootMode(StrEnum):
    COLD = "cold"  # destroy the domain and start it again
    WARM = "warm"  # `reboot` from inside the guest
    RESET = "reset"  # libvirt reset (hardware reset)
    CPU_CYCLE = "cpu-cycle"  # cold boot, then offline/online each secondary N times


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """Maximum acceptable rates for a cell; ``None`` means not judged."""

    vcpu_offline: float | None = 0.0
    boot_failure: float | None = 0.0
    confidence: float = 0.95
    # a maximum of 0 passes only once the clean boots rule out this rate (at confidence);
    # None: a clean class is ``clean`` ("no failure in n boots"), never ``pass``
    rule_out: float | None = None


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds. ``boot``: start to SSH login; ``ssh``: one connection attempt;
    ``command``: one remote command; ``shutdown``: graceful stop before destroy."""

    boot: float = 300.0
    ssh: float = 10.0
    command: float = 60.0
    shutdown: float = 30.0


@dataclass(frozen=True)
class Cell:
    """One point of the matrix: a guest on a host with a vCPU count, and its boots."""

    id: str
    matrix: str
    host: str
    guest: str
    vcpus: int
    boots: int
    reboot: RebootMode = RebootMode.COLD
    memory_mib: int = 2048
    params: tuple[tuple[str, Any], ...] = ()  # other axes, in matrix order
    host_attrs: tuple[tuple[str, Any], ...] = ()
    expect: Expectation = field(default_factory=Expectation)
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def safe_id(self) -> str:
        """The id with only ``[A-Za-z0-9_.-]`` (readable; two cells may share it)."""
        return safe_name(self.id.replace("/", "."))

    @property
    def folder(self) -> str:
        """This cell's own name for folders and domains: the readable ``safe_id`` (cut
        to 80 characters) plus a short hash of the id, so cells whose ids differ only in
        characters ``safe_id`` replaces (``a b``, ``a&b``, ``a_b``) never share one."""
        return cell_folder(self.id)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "host": self.host,
            "guest": self.guest,
            "vcpus": self.vcpus,
            "boots": self.boots,
            "reboot": str(self.reboot),
            "memory_mib": self.memory_mib,
        }
        d.update(dict(self.params))
        d["host_attrs"] = dict(self.host_attrs)
        d["expect"] = {
            "vcpu_offline": self.expect.vcpu_offline,
            "boot_failure": self.expect.boot_failure,
            "confidence": self.expect.confidence,
        }
        return d


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def same_value(a: Any, b: Any) -> bool:
    """Whether an axis value or host attribute ``a`` is the value ``b`` a selector names:
    the one rule for matrices (include/exclude/overrides/where), bisect campaigns and sim
    rules. YAML gives ``3`` and ``"3"`` for what a user means as one value: they match;
    a boolean only matches a boolean (``true`` is not ``1``, nor ``"true"``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b) or str(a) == str(b)


def cell_folder(cell_id: str) -> str:
    """``node-1/es11/vcpu16`` -> ``node-1.es11.vcpu16-<8 hex>`` (see ``Cell.folder``)."""
    digest = hashlib.blake2b(cell_id.encode("utf-8", "surrogatepass"),
                             digest_size=4).hexdigest()
    return f"{safe_name(cell_id.replace('/', '.'))[:80]}-{digest}"


def safe_name(text: str) -> str:
    """Map any text to ``[A-Za-z0-9_.-]+`` (other characters become ``_``)."""
    return _UNSAFE.sub("_", text) or "_"


@dataclass(frozen=True)
class Finding:
    """One kernel message that matters, found in a text."""

    kind: str  # e.g. "cpu_failed_online", "psci_failed_boot", "panic"
    line: int  # 1-based line number in the text it came from
    text: str  # the message without prefixes
    cpu: int | None = None
    errno: int | None = None


@dataclass(frozen=True)
class Signature:
    """A normalized, countable title for a failure (numbers, addresses, ids removed)."""

    kind: str
    title: str


@dataclass(frozen=True, kw_only=True)
class SignatureCount:
    """Boots (or occurrences in one text) showing one signature; ``known``: bugs of open
    known issues naming it (reports). The one definition: classifier, store, stats and
    reports all use it."""

    kind: str
    title: str
    count: int
    known: tuple[str, ...] = ()


@dataclass(frozen=True)
class BootResult:
    """Everything recorded about one boot attempt of one cell."""

    run_id: str
    cell_id: str
    index: int  # 0-based boot number within the cell
    outcome: Outcome
    reason: str = ""  # short why: panic title, "no SSH within 300s", "libvirt: ..."
    host: str = ""
    guest: str = ""
    vcpus: int = 0
    attempt: int = 1  # infrastructure retries of the same boot
    offline_cpus: tuple[int, ...] = ()
    online_cpus: tuple[int, ...] | None = None
    cpus_brought_up: int | None = None
    kernel_release: str | None = None
    signatures: tuple[Signature, ...] = ()
    findings: tuple[Finding, ...] = ()
    timings: tuple[tuple[str, float], ...] = ()  # event name -> unix time
    bringup_latency_s: float | None = None  # first secondary start to last booted
    slowest_cpu: int | None = None
    artifacts: tuple[tuple[str, str], ...] = ()  # name -> path relative to the run dir
    extra: tuple[tuple[str, Any], ...] = ()
