"""The simulated lab's model: the ``sim:`` section of a lab file, and the fate of one boot.

A rule list (first match wins) gives each boot its probabilities; every boot draws from
its own RNG seeded from ``(seed, host, guest, vcpus, index)``, so the same seed gives the
same guest outcomes whatever the thread scheduling and however often the boot is retried.
Infrastructure faults draw from ``(..., index, attempt)`` so a retry can succeed.

Everything here is pure: ``fate(...)`` is a function of its arguments.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from pydantic import Field, field_validator

from harness.errors import ConfigError
from harness.inventory import Frozen, Int, Lab, Num, Scalar
from harness.model import Outcome, same_value
from harness.yamlsrc import PathT, did_you_mean, validate

MatchValue = Scalar | list[Scalar]


class Seconds(Frozen):
    mean: Num = Field(40.0, ge=0)
    sd: Num = Field(8.0, ge=0)


class SimRule(Frozen):
    """``match`` keys: ``host``, ``guest``, ``vcpus`` or a host attribute; a value or a
    list of values. The first rule that matches a boot gives its probabilities."""

    match: dict[str, MatchValue] = Field(default_factory=dict)
    vcpu_offline: Num = Field(0.0, ge=0.0, le=1.0)  # per boot that did not fail
    boot_failure: Num = Field(0.0, ge=0.0, le=1.0)
    panic: Num | None = Field(None, ge=0.0, le=1.0)  # share of failures that panic
    offline_cpus: tuple[Int, Int] = (1, 2)  # how many CPUs stay offline: [min, max]
    boot_seconds: Seconds | None = None

    @field_validator("offline_cpus")
    @classmethod
    def _range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1]:
            raise ValueError("offline_cpus is [min, max] with 1 <= min <= max")
        return v


class HostFaults(Frozen):
    """Infrastructure faults of one simulated host; all come out as ``infra_error``."""

    gone_after: Int | None = Field(None, ge=0)  # the host disappears after N boots
    ssh_refused: Num = Field(0.0, ge=0.0, le=1.0)  # guest answers, refuses the login
    slow: Num = Field(0.0, ge=0.0, le=1.0)  # a libvirt operation times out
    latency_factor: Num = Field(1.0, gt=0)  # boots take this much longer


class SimModel(Frozen):
    seed: Int = 0
    rules: list[SimRule] = Field(default_factory=list)
    boot_seconds: Seconds = Field(default_factory=Seconds)
    infra_error: Num = Field(0.0, ge=0.0, le=1.0)  # per boot attempt
    panic: Num = Field(0.5, ge=0.0, le=1.0)  # share of boot failures that panic
    hosts: dict[str, HostFaults] = Field(default_factory=dict)


@dataclass(frozen=True)
class Fate:
    """What happens to one boot attempt (the ground truth the harness must find)."""

    outcome: Outcome
    offline_cpus: tuple[int, ...] = ()
    failure: Literal["", "panic", "silent"] = ""
    panic_kind: int = 0  # which panic text (see text.py)
    boot_seconds: float = 0.0
    infra: Literal["", "libvirt", "slow", "ssh_refused"] = ""
    retry_psci: bool = True  # the later online attempt prints the PSCI -22 lines
    entropy: int = 0  # for text details (timestamps), same per boot


def load_sim_model(lab: Lab) -> SimModel:
    """Validate ``lab``'s ``sim:`` section; errors point into the lab file."""
    if lab.spec.sim is None:
        raise lab.doc.error((), "this lab has no 'sim' section")
    model: SimModel = validate(SimModel, lab.doc, ("sim",), data=lab.spec.sim)
    attrs = sorted({k for h in lab.hosts.values() for k in h.attributes})
    keys = ["host", "guest", "vcpus", *attrs]
    for i, rule in enumerate(model.rules):
        for key, value in rule.match.items():
            path: PathT = ("sim", "rules", i, "match", key)
            if key not in keys:
                raise lab.doc.error(path, f"unknown match key {key!r}{did_you_mean(key, keys)}"
                                    f" (allowed: {', '.join(keys)})", key=True)
            names: list[str] | None = {"host": list(lab.hosts),
                                       "guest": list(lab.guests)}.get(key)
            items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
            for j, v in items:
                at = path if j is None else (*path, j)
                if names is not None and str(v) not in names:
                    raise lab.doc.error(at, f"unknown {key} {v!r}{did_you_mean(str(v), names)}")
                if key == "vcpus" and (isinstance(v, bool) or not isinstance(v, int)):
                    raise lab.doc.error(at, f"vcpus: {v!r} is not a whole number")
    for name in model.hosts:
        if name not in lab.hosts:
            raise ConfigError(f"unknown host {name!r}{did_you_mean(name, lab.hosts)}",
                              lab.doc.loc(("sim", "hosts", name), key=True))
    return model


def uri_seed(uri: str) -> int | None:
    """``sim:///?seed=N`` -> N (None when the URI names no seed)."""
    query = parse_qs(urlparse(uri).query)
    if "seed" not in query:
        return None
    try:
        return int(query["seed"][-1])
    except ValueError:
        raise ConfigError(f"{uri}: seed must be a whole number") from None



def rule_for(model: SimModel, host: str, attrs: Mapping[str, Any], guest: str,
             vcpus: int) -> SimRule | None:
    point: dict[str, Any] = {**attrs, "host": host, "guest": guest, "vcpus": vcpus}
    for rule in model.rules:
        ok = True
        for key, want in rule.match.items():
            values = want if isinstance(want, list) else [want]
            if key not in point or not any(same_value(point[key], v) for v in values):
                ok = False
                break
        if ok:
            return rule
    return None


def rng_for(*parts: object) -> random.Random:
    """A generator seeded from the parts, the same in every process and thread."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def fate(model: SimModel, *, seed: int, host: str, attrs: Mapping[str, Any], guest: str,
         vcpus: int, index: int, attempt: int = 1, infra: bool = True) -> Fate:
    """The fate of boot ``index`` (attempt ``attempt``) of a guest on a host; with
    ``infra=False`` the guest's own fate, whatever the infrastructure does (the truth)."""
    rule = rule_for(model, host, attrs, guest, vcpus)
    rng = rng_for(seed, host, guest, vcpus, index)
    secs = (rule.boot_seconds if rule and rule.boot_seconds else None) or model.boot_seconds
    faults = model.hosts.get(host, HostFaults())
    boot_s = max(1.0, rng.gauss(secs.mean, secs.sd)) * faults.latency_factor
    u_fail, u_off, u_panic, u_kind = rng.random(), rng.random(), rng.random(), rng.random()
    entropy = rng.getrandbits(32)
    offline: tuple[int, ...] = ()
    if rule is not None and vcpus > 1 and u_off < rule.vcpu_offline:
        lo, hi = rule.offline_cpus
        k = min(vcpus - 1, rng.randint(lo, hi))
        offline = tuple(sorted(rng.sample(range(1, vcpus), k)))
    fault = _infra(model, faults, seed, host, guest, vcpus, index, attempt) if infra else ""
    if fault:
        return Fate(Outcome.INFRA_ERROR, infra=fault, boot_seconds=boot_s, entropy=entropy)
    if rule is not None and u_fail < rule.boot_failure:
        share = rule.panic if rule.panic is not None else model.panic
        return Fate(Outcome.BOOT_FAILURE, offline_cpus=offline,
                    failure="panic" if u_panic < share else "silent",
                    panic_kind=int(u_kind * 1000), boot_seconds=boot_s, entropy=entropy)
    if offline:
        return Fate(Outcome.VCPU_OFFLINE, offline_cpus=offline, boot_seconds=boot_s,
                    entropy=entropy)
    return Fate(Outcome.OK, boot_seconds=boot_s, entropy=entropy)


def _infra(model: SimModel, faults: HostFaults, seed: int, host: str, guest: str, vcpus: int,
           index: int, attempt: int) -> Literal["", "libvirt", "slow", "ssh_refused"]:
    if not (model.infra_error or faults.slow or faults.ssh_refused):
        return ""
    rng = rng_for(seed, host, guest, vcpus, index, "infra", attempt)
    if rng.random() < model.infra_error:
        return "libvirt"
    if rng.random() < faults.slow:
        return "slow"
    if rng.random() < faults.ssh_refused:
        return "ssh_refused"
    return ""


def true_rates(model: SimModel, host: str, attrs: Mapping[str, Any], guest: str,
               vcpus: int) -> dict[str, float]:
    """Per-boot probabilities of each guest outcome (infrastructure errors aside)."""
    rule = rule_for(model, host, attrs, guest, vcpus)
    if rule is None:
        return {"ok": 1.0, "vcpu_offline": 0.0, "boot_failure": 0.0}
    off = (1 - rule.boot_failure) * (rule.vcpu_offline if vcpus > 1 else 0.0)
    return {"ok": 1 - rule.boot_failure - off, "vcpu_offline": off,
            "boot_failure": rule.boot_failure}
