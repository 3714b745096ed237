"""Backends by URI scheme, each with explicit capabilities: the one place that reads a
host's URI to decide what it is (pure; no backend module is imported here).

    kind_of("qemu+ssh://root@node-1/system").name   -> "libvirt"
    capabilities("qemu:///embed?root=/x").one_process -> True
    capabilities("sim:///?seed=3").simulated        -> True

A URI's scheme is ``driver[+transport]``; the driver picks the kind. A new backend is one
module implementing ``backend.base`` (``Backend``, ``Domain``, a ``Connector``), one
``register(BackendKind(...))`` below, its branch in ``harness/wiring.py``, and a row in
the contract tests' fixture (``tests/integration/test_backend_contract.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from harness.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a backend can do for one URI (what callers used to guess from the URI)."""

    simulated: bool = False  # outcomes drawn from the lab's model, on a virtual clock
    one_process: bool = False  # the connection belongs to one process for its life
    host_local: bool = False  # QEMU runs on this machine (/proc threads, cgroups, qemu log)
    remote: bool = False  # reached over the network (keepalive; host evidence over SSH)
    vcpu_stats: bool = False  # per-vCPU host statistics (libvirt VIR_DOMAIN_STATS_VCPU)
    paused_start: bool = True  # start paused, let fault hooks act, then resume


@dataclass(frozen=True, kw_only=True)
class BackendKind:
    name: str  # "libvirt", "sim"
    drivers: tuple[str, ...]  # the scheme's driver part: qemu, test, sim
    module: str  # where its Backend lives
    capabilities: Callable[[str], Capabilities]


_KINDS: dict[str, BackendKind] = {}


def register(kind: BackendKind) -> BackendKind:
    for driver in kind.drivers:
        if driver in _KINDS and _KINDS[driver] is not kind:
            raise ValueError(f"URI driver {driver!r} is already {_KINDS[driver].name}'s")
        _KINDS[driver] = kind
    return kind


def kinds() -> tuple[BackendKind, ...]:
    return tuple(dict.fromkeys(_KINDS.values()))


def driver_of(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in uri else ""


def kind_of(uri: str) -> BackendKind:
    """The backend kind of ``uri``; ``ConfigError`` naming the known schemes otherwise."""
    kind = _KINDS.get(driver_of(uri))
    if kind is None:
        known = ", ".join(f"{d}:" for d in sorted(_KINDS))
        raise ConfigError(f"no backend for URI {uri!r} (known schemes: {known})")
    return kind


def capabilities(uri: str) -> Capabilities:
    return kind_of(uri).capabilities(uri)


def _libvirt_caps(uri: str) -> Capabilities:
    parts = urlsplit(uri)
    driver = driver_of(uri)
    remote = bool(parts.hostname)
    return Capabilities(
        one_process=parts.path == "/embed",
        host_local=driver == "qemu" and not remote,
        remote=remote,
        vcpu_stats=True,  # every libvirt driver answers (the test driver with little)
    )


LIBVIRT = register(BackendKind(name="libvirt", drivers=("qemu", "test"),
                               module="harness.backend.libvirt",
                               capabilities=_libvirt_caps))
SIM = register(BackendKind(name="sim", drivers=("sim",), module="harness.backend.sim",
                           capabilities=lambda uri: Capabilities(simulated=True)))
