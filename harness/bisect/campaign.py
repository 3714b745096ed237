"""The campaign file: which builds, booted where, what counts as a failure, when to stop.

    lab: labs/bisect-sim-lab.yaml
    builds: [b00, b01, ..., b63]      # in order; first known good, last known bad
                                      # (or a 'build:' section: harness.bisect.build)
    cell: {host: sim-1, vcpus: 8}     # or host: {numa_patch: true} (every matching host)
    failure: vcpu_offline             # boot_failure | any | {signature: "title text"}
    confidence: 0.95
    budget: {boots: 20000, hours: 12}

Loaded with positions (``harness.yamlsrc``): every mistake is a ConfigError saying
``file:line:column``. Relative paths resolve against the campaign file's folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from harness.inventory import NAME_PATTERN, Frozen, Lab, Scalar, load_lab
from harness.model import BootResult, Outcome, RebootMode, same_value
from harness.yamlsrc import YamlDoc, did_you_mean, load_yaml, validate

from .build import BuildPlan, BuildSection, load_build
from .model import MODELS, ModelChoice, Priors


class CellModel(Frozen):
    host: str | dict[str, Scalar]  # a host name, or attributes every chosen host has
    vcpus: int = Field(ge=1, le=4096)
    reboot: RebootMode = RebootMode.COLD
    memory_mib: int = Field(2048, ge=64, le=1 << 22)


class SignatureFailure(Frozen):
    signature: str = Field(min_length=1)  # a boot fails when a signature title contains it


class BudgetModel(Frozen):
    boots: int | None = Field(None, ge=1)  # guest boots this campaign may add
    hours: float | None = Field(None, gt=0)  # wall-clock hours of one invocation


class PriorsModel(Frozen):
    bad: tuple[float, float] = (1.0, 1.0)  # Beta(a, b) of the bad builds' failure rate
    good: tuple[float, float] = (1.0, 19.0)  # Beta(a, b) of the baseline (model B)
    baseline: float = Field(0.75, gt=0.0, lt=1.0)  # prior weight of model B

    @field_validator("bad", "good")
    @classmethod
    def _positive(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) <= 0:
            raise ValueError("Beta parameters must be > 0")
        return v


FAILURES = ("vcpu_offline", "boot_failure", "any")


class CampaignModel(Frozen):
    name: str | None = Field(None, pattern=NAME_PATTERN)
    description: str = ""
    lab: Path
    builds: list[str] | None = Field(None, min_length=2)  # lab guests; or a 'build' section
    build: BuildSection | None = None
    cell: CellModel
    failure: str | SignatureFailure = "vcpu_offline"
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    budget: BudgetModel = Field(default_factory=BudgetModel)
    model: Literal["auto", "clean", "baseline"] = "auto"
    priors: PriorsModel = Field(default_factory=PriorsModel)
    slots: int | None = Field(None, ge=1, le=4096)  # parallel boots per round (default: all)
    use_recorded: bool = True  # seed with boots of these builds recorded by other runs

    @field_validator("failure", mode="before")
    @classmethod
    def _failure(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in FAILURES:
            raise ValueError(f"unknown failure {v!r}{did_you_mean(v, FAILURES)}; use one of "
                             f"{', '.join(FAILURES)} or {{signature: TEXT}}")
        if not isinstance(v, str | dict):
            raise ValueError(f"use one of {', '.join(FAILURES)} or {{signature: TEXT}}")
        return v


@dataclass(frozen=True)
class Failure:
    """What counts as a failed boot. Infrastructure errors are never boots at all."""

    outcomes: frozenset[Outcome] = frozenset({Outcome.VCPU_OFFLINE})
    signature: str | None = None

    def __call__(self, result: BootResult) -> bool:
        if self.signature is not None:
            return any(self.signature in s.title for s in result.signatures)
        return result.outcome in self.outcomes

    def describe(self) -> str:
        if self.signature is not None:
            return f"signature containing {self.signature!r}"
        return " or ".join(sorted(str(o) for o in self.outcomes))


@dataclass(frozen=True)
class Campaign:
    """A validated campaign: its lab, builds, hosts and rules."""

    name: str
    file: Path
    lab: Lab
    builds: tuple[str, ...]
    hosts: tuple[str, ...]  # the lab hosts the builds are booted on
    vcpus: int
    reboot: RebootMode
    memory_mib: int
    failure: Failure
    confidence: float
    budget_boots: int | None
    budget_hours: float | None
    model: ModelChoice
    priors: Priors
    slots: int  # parallel boots per round
    use_recorded: bool
    build: BuildPlan | None = None  # builds the campaign makes itself (``build:``)
    # no ``priors:`` given: fit the good builds' prior and the baseline model's weight to
    # the store's earlier runs of the known-good build in this cell (harness.bisect.prior)
    empirical: bool = False

    @property
    def matrix_name(self) -> str:
        """What the store files the campaign's runs under (resume checks it)."""
        return f"bisect-{self.name}"

    @property
    def run_prefix(self) -> str:
        """How a new run's id starts: ``bisect-<name>``, or the name alone when it starts
        with "bisect" already (``bisect-sim-20261125-...``, not ``bisect-bisect-sim-...``)."""
        if re.match(r"bisect(?:$|[-_.])", self.name):
            return self.name
        return f"bisect-{self.name}"


def load_campaign(path: str | Path) -> Campaign:
    file = Path(path)
    doc = load_yaml(file)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a campaign file is a mapping with 'lab', 'builds' and 'cell'")
    m: CampaignModel = validate(CampaignModel, doc)
    lab_path = m.lab if m.lab.is_absolute() else file.resolve().parent / m.lab
    if not lab_path.exists():
        raise doc.error(("lab",), f"lab file not found: {lab_path}")
    lab = load_lab(lab_path)
    hosts = _hosts(doc, m, lab)
    plan = None
    if m.build is not None:
        if m.builds is not None:
            raise doc.error(("builds",), "the builds come from the 'build' section (its git "
                            "range or patch series): remove 'builds'", key=True)
        plan, guests = load_build(doc, m.build, lab, hosts, file.resolve().parent)
        lab = Lab(lab.spec.model_copy(update={"guests": {**lab.guests, **guests}}), lab.doc)
        builds = tuple(b.name for b in plan.builds)
    elif m.builds is None:
        raise doc.error((), "give 'builds' (lab guests, in order) or a 'build' section (a "
                        "git range or patch series the campaign builds itself)")
    else:
        _check_builds(doc, m.builds, lab)
        builds = tuple(m.builds)
    slots = sum(lab.host(h).slots for h in hosts)
    fail = (Failure(frozenset(), m.failure.signature) if isinstance(m.failure, SignatureFailure)
            else Failure(frozenset({Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE}))
            if m.failure == "any" else Failure(frozenset({Outcome(m.failure)})))
    assert m.model in MODELS
    return Campaign(
        name=m.name or _name_of(file), file=file, lab=lab, builds=builds,
        hosts=hosts, vcpus=m.cell.vcpus, reboot=m.cell.reboot, memory_mib=m.cell.memory_mib,
        failure=fail, confidence=m.confidence, budget_boots=m.budget.boots,
        budget_hours=m.budget.hours, model=m.model,
        priors=Priors(bad_a=m.priors.bad[0], bad_b=m.priors.bad[1], good_a=m.priors.good[0],
                      good_b=m.priors.good[1], baseline=m.priors.baseline),
        slots=min(m.slots, slots) if m.slots else slots, use_recorded=m.use_recorded,
        build=plan, empirical="priors" not in m.model_fields_set)


def _name_of(file: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", file.stem) or "campaign"
    return stem if stem[0].isalnum() else f"c{stem}"


def _check_builds(doc: YamlDoc, builds: list[str], lab: Lab) -> None:
    seen: dict[str, int] = {}
    for i, b in enumerate(builds):
        if b not in lab.guests:
            raise doc.error(("builds", i), f"build {b!r} is not a guest of lab "
                            f"{lab.name!r}{did_you_mean(b, lab.guests)}")
        if b in seen:
            raise doc.error(("builds", i), f"build {b!r} is listed twice (first at position "
                            f"{seen[b] + 1})")
        seen[b] = i


def _hosts(doc: YamlDoc, m: CampaignModel, lab: Lab) -> tuple[str, ...]:
    want = m.cell.host
    if isinstance(want, str):
        if want not in lab.hosts:
            raise doc.error(("cell", "host"), f"unknown host {want!r}"
                            f"{did_you_mean(want, lab.hosts)}")
        return (want,)
    attrs = sorted({k for h in lab.hosts.values() for k in h.attributes})
    for key in want:
        if key not in attrs:
            raise doc.error(("cell", "host", key), f"unknown host attribute {key!r}"
                            f"{did_you_mean(key, attrs)} (known: {', '.join(attrs) or 'none'})",
                            key=True)
    found = tuple(h for h, spec in lab.hosts.items()
                  if all(same_value(spec.attributes.get(k), v) for k, v in want.items()))
    if not found:
        raise doc.error(("cell", "host"), f"no host of lab {lab.name!r} has "
                        + ", ".join(f"{k}={v}" for k, v in want.items()))
    return found

