"""The lab file: hosts (libvirt URI, attributes, slots, SSH) and guests (boot media, SSH).

Loaded from YAML with positions; every mistake is a ConfigError with file:line:column.
Relative paths resolve against the lab file's folder; ``${cache}`` in a path or URI is
the local lab's cache directory (``harness.lab.paths``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from harness.errors import ConfigError
from harness.lab.paths import expand as expand_cache
from harness.yamlsrc import YamlDoc, load_yaml, validate

Scalar = str | int | float | bool

# names a host attribute may not take: they are cell fields already
RESERVED_ATTRS = frozenset(
    {"id", "host", "guest", "vcpus", "boots", "reboot", "memory_mib", "matrix", "expect"}
)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None:
        return None
    value = Path(expand_cache(str(value))).expanduser()
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


class HostSSH(Frozen):
    """How the controller reaches the host itself (host dmesg, qemu logs)."""

    user: str = "root"
    host: str | None = None  # default: the host part of the libvirt URI
    port: int = Field(22, ge=1, le=65535)
    key: Path | None = None

    _paths = field_validator("key")(_resolve)


class StallFault(Frozen):
    """Local lab only: hold one secondary vCPU thread frozen past the guest's bring-up
    timeout with ``probability`` per boot (the FT-2500 symptom, made on purpose)."""

    probability: float = Field(ge=0.0, le=1.0)
    cpu: int | None = Field(None, ge=1)  # None: a random secondary
    # long enough that the vCPU never comes up during the boot: a thaw just after the
    # guest gave up on the CPU (5 s) can hang a TCG guest (docs/local-lab.md)
    seconds: float = Field(600.0, gt=0, le=3600)


class Fault(Frozen):
    stall: StallFault | None = None


class Firmware(Frozen):
    code: Path = Path("/usr/share/AAVMF/AAVMF_CODE.fd")
    vars: Path = Path("/usr/share/AAVMF/AAVMF_VARS.fd")

    _paths = field_validator("code", "vars")(_resolve)


class Network(Frozen):
    """``bridge`` on lab hosts; ``user`` (QEMU user-mode, SSH forwarded to 127.0.0.1)
    on this machine."""

    type: Literal["bridge", "user", "network"] = "bridge"
    source: str = "br0"  # bridge or libvirt network name


class HostSpec(Frozen):
    uri: str
    slots: int = Field(1, ge=1, le=1024)
    attributes: dict[str, Scalar] = Field(default_factory=dict)
    ssh: HostSSH | None = None
    domain_type: Literal["kvm", "qemu"] | None = None  # default: kvm unless local TCG
    cpu_model: str | None = None  # default: host-passthrough (kvm) / max (qemu)
    machine: str = "virt"
    firmware: Firmware = Field(default_factory=Firmware)
    network: Network = Field(default_factory=Network)
    fault: Fault | None = None
    storage_dir: Path | None = None  # where per-boot overlays go on that host

    _paths = field_validator("storage_dir")(_resolve)

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        v = expand_cache(v)  # the local lab: qemu:///embed?root=${cache}/libvirt
        parsed = urlparse(v)
        if not parsed.scheme or "://" not in v:
            raise ValueError(f"not a libvirt URI: {v!r} (e.g. qemu+ssh://root@node-1/system)")
        return v

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        bad = sorted(set(v) & RESERVED_ATTRS)
        if bad:
            raise ValueError(f"attribute names {bad} are reserved for cell fields")
        return v

    @property
    def is_sim(self) -> bool:
        return self.uri.startswith("sim:")

    @property
    def effective_domain_type(self) -> str:
        if self.domain_type:
            return self.domain_type
        return "kvm" if urlparse(self.uri).hostname else "qemu"


class GuestBoot(Frozen):
    """Either a disk image (UEFI/AAVMF, each boot on a throwaway qcow2 overlay) or a
    direct kernel boot."""

    image: Path | None = None
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str | None = None

    _paths = field_validator("image", "kernel", "initrd")(_resolve)

    @model_validator(mode="after")
    def _one_way(self) -> GuestBoot:
        if (self.image is None) == (self.kernel is None):
            raise ValueError("give either 'image' (qcow2) or 'kernel' (direct boot), not both")
        if self.image is not None and (self.initrd or self.cmdline):
            raise ValueError("'initrd' and 'cmdline' go with 'kernel', not with 'image'")
        return self


class GuestSSH(Frozen):
    user: str = "root"
    key: Path | None = None
    port: int = Field(22, ge=1, le=65535)

    _paths = field_validator("key")(_resolve)


class GuestSpec(Frozen):
    boot: GuestBoot | None = None  # not needed by simulated hosts
    ssh: GuestSSH = Field(default_factory=GuestSSH)
    kernel_release: str | None = None
    os: str | None = None
    memory_mib: int | None = Field(None, ge=64)
    fault: Fault | None = None


class SSHPolicy(Frozen):
    known_hosts: Path | None = None  # default: <lab dir>/known_hosts
    accept_new_host_keys: bool = False  # guests that make new keys at each boot

    _paths = field_validator("known_hosts")(_resolve)


class LabSpec(Frozen):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    hosts: dict[str, HostSpec] = Field(min_length=1)
    guests: dict[str, GuestSpec] = Field(min_length=1)
    ssh: SSHPolicy = Field(default_factory=SSHPolicy)
    sim: dict[str, Any] | None = None  # the simulated lab's model (harness.backend.sim)
    results: Path | None = None  # the SQLite store; default <repo>/reports/<lab>.db

    _paths = field_validator("results")(_resolve)


class Lab:
    """A validated lab with its source document (for located errors later on)."""

    def __init__(self, spec: LabSpec, doc: YamlDoc) -> None:
        self.spec = spec
        self.doc = doc
        self.file = doc.file

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hosts(self) -> dict[str, HostSpec]:
        return self.spec.hosts

    @property
    def guests(self) -> dict[str, GuestSpec]:
        return self.spec.guests

    def host(self, name: str) -> HostSpec:
        return self.spec.hosts[name]

    def guest(self, name: str) -> GuestSpec:
        return self.spec.guests[name]

    @property
    def known_hosts(self) -> Path:
        return self.spec.ssh.known_hosts or self.file.parent / "known_hosts"


def load_lab(path: str | Path) -> Lab:
    file = Path(path)
    doc = load_yaml(file)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a lab file is a mapping with 'name', 'hosts' and 'guests'")
    _check_names(doc)
    spec: LabSpec = validate(LabSpec, doc, context={"base_dir": file.resolve().parent})
    for gname, guest in spec.guests.items():
        if guest.boot is None and not all(h.is_sim for h in spec.hosts.values()):
            raise doc.error(("guests", gname), f"guest {gname!r} has no 'boot' (needed by "
                            "hosts that are not simulated)", key=True)
    if any(h.is_sim for h in spec.hosts.values()) and spec.sim is None:
        raise doc.error((), "simulated hosts (sim:///) need a 'sim' section with the model")
    return Lab(spec, doc)


def _check_names(doc: YamlDoc) -> None:
    import re

    for section in ("hosts", "guests"):
        items = doc.data.get(section)
        if not isinstance(items, dict):
            continue
        for name in items:
            if not re.match(NAME_PATTERN, str(name)):
                raise ConfigError(
                    f"{section[:-1]} name {name!r} may only use letters, digits, '_', '.', '-'",
                    doc.loc((section, name), key=True),
                )
