"""The report view-model: what every report writer reads (frozen, no I/O, no statistics).

``build.py`` makes one from the store's recorded run (calling ``harness.stats`` for every
number that is a statistic); the HTML, JUnit, Markdown and JSON writers only format it.
Tests build synthetic ones directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.model import Outcome, SignatureCount
from harness.stats.rates import Rate

if TYPE_CHECKING:
    from harness.history.regress import Regressions
    from harness.history.runs import RunStatus

RATE_OUTCOMES = (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE)
OUTCOME_LABELS: dict[str, str] = {
    Outcome.OK: "ok",
    Outcome.VCPU_OFFLINE: "vCPU offline",
    Outcome.BOOT_FAILURE: "boot failure",
    Outcome.INFRA_ERROR: "infrastructure error",
}
__all__ = ["ClassVerdict", "Rate", "SignatureCount"]  # and the view records below
VERDICTS = ("fail", "undecided", "pass", "clean", "not_judged")
# "clean": a maximum of 0 and no failure seen, no rate to rule out asked or reached (its
# own word: "no failure in n boots (rate < X% at 95%)" is no proof of a zero rate)


@dataclass(frozen=True)
class StoppedEarly:
    """Adaptive stopping cut the cell short: the verdict it made, at which guest boot, and
    on which interval (the cell's rates are then shown as confidence sequences)."""

    decision: str  # "pass" | "fail"
    at_boot: int
    outcome: str  # the class whose interval decided it
    low: float
    high: float
    method: str = "confidence sequence"


@dataclass(frozen=True)
class ClassVerdict:
    """One outcome class of a cell against its expectation, in words and numbers."""

    outcome: str  # "vcpu_offline" | "boot_failure"
    verdict: str  # "pass" | "fail" | "undecided"
    limit: float  # the expected maximum rate
    statement: str  # "vCPU offline 12/50 = 24% [14%, 37%], expected <= 0%"
    boots_to_decide: int | None = None  # undecided: more boots that could settle it
    claim: str = ""  # the one-sided claim behind the verdict (harness.stats wording)


@dataclass(frozen=True)
class Snippet:
    """The lines around one finding (or the tail of a console), never a whole log."""

    label: str  # "cpu_failed_online at dmesg:812" / "console (last 30 lines)"
    source: str  # artifact name the lines come from ("dmesg", "console")
    first_line: int  # 1-based number of lines[0] in that artifact
    lines: tuple[str, ...]
    mark: tuple[int, ...] = ()  # 1-based line numbers to highlight


@dataclass(frozen=True)
class BootView:
    index: int
    outcome: str
    reason: str = ""
    offline_cpus: tuple[int, ...] = ()
    latency_s: float | None = None
    signatures: tuple[str, ...] = ()
    snippets: tuple[Snippet, ...] = ()
    artifacts: tuple[tuple[str, str], ...] = ()  # name -> path relative to the report file


@dataclass(frozen=True)
class CellView:
    id: str
    host: str
    guest: str
    vcpus: int
    planned: int  # boots the matrix asked for
    ok: int
    vcpu_offline: int
    boot_failure: int
    infra_error: int
    vcpu_offline_rate: Rate
    boot_failure_rate: Rate
    verdict: str  # "pass" | "clean" | "fail" | "undecided" | "not_judged"
    judgements: tuple[ClassVerdict, ...] = ()
    signatures: tuple[SignatureCount, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()  # other matrix axes
    host_attrs: tuple[tuple[str, Any], ...] = ()
    boot_views: tuple[BootView, ...] = ()
    # what the boots ran on (QEMU, libvirt, host kernel, firmware, guest kernel): each
    # name with the distinct values the cell's boots recorded, comma-separated
    versions: tuple[tuple[str, str], ...] = ()
    stopped_early: StoppedEarly | None = None
    interval: str = "clopper-pearson"  # how the rates' intervals were made

    @property
    def boots(self) -> int:
        """Boots recorded, infrastructure errors included."""
        return self.ok + self.vcpu_offline + self.boot_failure + self.infra_error

    @property
    def guest_boots(self) -> int:
        """The rates' denominator: boots that were not infrastructure errors."""
        return self.ok + self.vcpu_offline + self.boot_failure

    def count(self, outcome: str) -> int:
        return int(getattr(self, outcome))

    def rate(self, outcome: str) -> Rate:
        rate: Rate = getattr(self, f"{outcome}_rate")
        return rate

    def keys(self) -> dict[str, Any]:
        """Every axis and host attribute value, by name (for grouping and pivoting)."""
        out: dict[str, Any] = {"host": self.host, "guest": self.guest, "vcpus": self.vcpus}
        out.update(dict(self.params))
        for k, v in self.host_attrs:
            out.setdefault(k, v)
        return out

    @property
    def failed_statements(self) -> tuple[str, ...]:
        return tuple(j.statement for j in self.judgements if j.verdict == "fail")


@dataclass(frozen=True)
class Comparison:
    """Two groups of boots compared on one outcome (exact test, Holm-adjusted)."""

    outcome: str
    axis: str  # the axis or host attribute that differs: "numa_patch"
    a_label: str  # "numa_patch=true"
    b_label: str  # "numa_patch=false"
    within: str  # the stratum held fixed: "guest=es11" ("" for the whole run)
    a: Rate
    b: Rate
    difference: Rate  # a - b, with its (Newcombe) interval; k and n are unused (0)
    p_value: float
    p_adjusted: float  # after Holm across the run's family of comparisons
    significant: bool
    test: str = "Boschloo"

    @property
    def title(self) -> str:
        within = f" ({self.within})" if self.within else ""
        return f"{OUTCOME_LABELS.get(self.outcome, self.outcome)}: {self.a_label} vs " \
               f"{self.b_label}{within}"


@dataclass(frozen=True)
class CellChange:
    """One cell and outcome class, previous run (a) against this one (b)."""

    cell_id: str
    outcome: str
    a: Rate
    b: Rate
    p_value: float
    p_adjusted: float
    significant: bool
    direction: str  # "worse" | "better" | "same"
    test: str = ""  # "boschloo", "fisher" or "none" (nothing to compare)


@dataclass(frozen=True)
class SignatureChange:
    title: str
    a_count: int
    a_boots: int
    b_count: int
    b_boots: int
    p_value: float
    p_adjusted: float
    significant: bool
    direction: str  # "worse" | "better" | "same"
    new: bool = False  # never seen in run a
    gone: bool = False  # seen in run a, not in run b
    test: str = ""


@dataclass(frozen=True)
class RunDiff:
    """What changed from run ``a_id`` (older) to run ``b_id``."""

    a_id: str
    b_id: str
    matrix: str
    cells: tuple[CellChange, ...] = ()  # every compared cell x outcome
    signatures: tuple[SignatureChange, ...] = ()
    only_in_a: tuple[str, ...] = ()  # cells not in run b
    only_in_b: tuple[str, ...] = ()
    alpha: float = 0.05

    @property
    def worse(self) -> tuple[CellChange, ...]:
        return tuple(c for c in self.cells if c.significant and c.direction == "worse")

    @property
    def better(self) -> tuple[CellChange, ...]:
        return tuple(c for c in self.cells if c.significant and c.direction == "better")

    @property
    def new_signatures(self) -> tuple[SignatureChange, ...]:
        return tuple(s for s in self.signatures if s.new)

    @property
    def flagged_signatures(self) -> tuple[SignatureChange, ...]:
        """Significant changes and every new signature."""
        return tuple(s for s in self.signatures if s.significant or s.new)


@dataclass(frozen=True)
class Histogram:
    """Bring-up latency counts: ``edges`` has one more item than ``counts``."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    n: int
    median: float | None = None
    p95: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class HostRow:
    """One host of the run: the lab file's attributes beside the facts gathered about it
    (``harness.hostfacts``: the Ansible role's file, or this machine)."""

    name: str
    attrs: tuple[tuple[str, Any], ...] = ()
    facts: tuple[tuple[str, Any], ...] = ()  # FACT_KEYS order
    source: str = ""
    error: str = ""


@dataclass(frozen=True)
class DelayPoint:
    """One boot (or CPU-cycle trial): its secondary bring-up latency against the host
    delay of its late vCPU (``harness.collect.vcpustats.late_vcpu_delay``)."""

    cell: str
    index: int
    cpu: int
    host_delay_s: float
    latency_s: float | None  # None when the vCPU never came up (plotted apart)
    outcome: str
    kind: str = "boot"  # "boot" or "trial"


@dataclass(frozen=True)
class RunView:
    id: str
    matrix: str
    started: str  # ISO 8601, UTC
    finished: str | None
    cells: tuple[CellView, ...]
    axes: tuple[str, ...] = ("host", "guest", "vcpus")  # matrix axes, in matrix order
    host_attr_names: tuple[str, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    previous: RunDiff | None = None
    previous_note: str = ""  # why there is no previous-run section, when there is none
    latency: Histogram | None = None
    config: tuple[tuple[str, Any], ...] = ()  # the run's configuration (matrix, lab, ...)
    versions: tuple[tuple[str, str], ...] = ()  # harness, python, libvirt, qemu ...
    confidence: float = 0.95
    artifacts_base: str = ""  # run artifacts folder, relative to the report files
    regressions: Regressions | None = None  # per cell against the baseline (nightly rule)
    baseline_reason: str = ""  # which run this one is compared with, and why
    completeness: RunStatus | None = None  # complete or not, and why

    @property
    def unmeasured(self) -> dict[str, str]:
        """Cells the run could not measure fully (an incomplete run's unfinished cells),
        with why: JUnit makes them errors unless they already fail."""
        st = self.completeness
        if st is None or st.complete:
            return {}
        why = "; ".join(st.reasons)
        return {cid: f"not measured: {n} of {planned} guest boots ({why})"
                for cid, n, planned in st.unfinished}
    hosts: tuple[HostRow, ...] = ()
    delay_points: tuple[DelayPoint, ...] = ()

    @property
    def verdict_counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for c in self.cells:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return out

    @property
    def totals(self) -> dict[str, int]:
        return {
            "boots": sum(c.boots for c in self.cells),
            "ok": sum(c.ok for c in self.cells),
            "vcpu_offline": sum(c.vcpu_offline for c in self.cells),
            "boot_failure": sum(c.boot_failure for c in self.cells),
            "infra_error": sum(c.infra_error for c in self.cells),
        }

    @property
    def group_keys(self) -> tuple[str, ...]:
        """Everything the HTML can group or pivot by: axes, then host attributes."""
        return (*self.axes, *(a for a in self.host_attr_names if a not in self.axes))

    def signature_totals(self) -> list[SignatureCount]:
        """Boots per signature over the whole run, most frequent first."""
        counts: dict[str, SignatureCount] = {}
        for c in self.cells:
            for s in c.signatures:
                prev = counts.get(s.title)
                known = tuple(dict.fromkeys((*(prev.known if prev else ()), *s.known)))
                counts[s.title] = SignatureCount(
                    kind=s.kind, title=s.title,
                    count=s.count + (prev.count if prev else 0), known=known)
        return sorted(counts.values(), key=lambda s: (-s.count, s.title))


def show_value(v: Any) -> str:
    """An axis or attribute value as the user wrote it in YAML (``true``, not ``True``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def pct(x: float | None, digits: int = 0) -> str:
    """A fraction as a percentage for people: 0.2412 -> '24%' (digits=0)."""
    if x is None:
        return "n/a"
    v = 100.0 * x
    if digits == 0 and 0 < v < 1:
        return f"{v:.1f}%"
    if digits == 0 and 99 < v < 100:
        return f"{v:.1f}%"
    return f"{v:.{digits}f}%"


def rate_text(r: Rate) -> str:
    """'12/50 = 24% [14%, 37%]'"""
    if r.n == 0:
        return "0/0 (no guest boots)"
    return f"{r.k}/{r.n} = {pct(r.value)} [{pct(r.low)}, {pct(r.high)}]"


def p_text(p: float) -> str:
    if p < 0.0001:
        return "p < 0.0001"
    return f"p = {p:.4f}" if p < 0.01 else f"p = {p:.3f}"
