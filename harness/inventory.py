"""The lab file: hosts (libvirt URI, attributes, slots, SSH) and guests (boot media, SSH).

Loaded from YAML with positions; every mistake is a ConfigError with file:line:column.
Relative paths resolve against the lab file's folder; ``${cache}`` in a path or URI is
the local lab's cache directory (``harness.lab.paths``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.backend.registry import Capabilities, capabilities, kind_of
from harness.errors import ConfigError
from harness.lab.paths import expand as expand_cache
from harness.yamlsrc import YamlDoc, load_yaml, validate

# Strict types: a count is a whole number, never ``true`` (1), ``2.0`` or ``'2'``; a
# number is an int or a float, never a boolean or a string; a flag is a YAML boolean.
Int = Annotated[int, Strict()]
Num = Annotated[float, Strict(), AllowInfNan(False)]
Bool = Annotated[bool, Strict()]
Scalar = Annotated[str, StringConstraints(max_length=256)] | Int | Num | Bool

# names a host attribute may not take: they are cell fields already
RESERVED_ATTRS = frozenset(
    {"id", "host", "guest", "vcpus", "boots", "reboot", "memory_mib", "matrix", "expect"}
)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # Rust regex in pydantic: $ = end of text
NAME_MAX = 64  # names make run ids, domain names and folder names: keep them short
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=NAME_MAX)]
Text = Annotated[str, StringConstraints(max_length=4096)]


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a valid host, guest, lab or matrix name (None if it is)."""
    if not isinstance(name, str):
        return f"a name is text, not {type(name).__name__} {name!r}"
    if len(name) > NAME_MAX:
        return f"name {name[:20]!r}... is longer than {NAME_MAX} characters ({len(name)})"
    if not _NAME_RE.match(name):
        return (f"name {name!r} may only use letters, digits, '_', '.', '-' (starting with a "
                "letter or digit, on one line)")
    return None


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

    user: Name = "root"
    host: Text | None = None  # default: the host part of the libvirt URI
    port: Int = Field(22, ge=1, le=65535)
    key: Path | None = None
    # guests on a host-only network the controller cannot route to: reach their SSH
    # through this host (an SSH "direct-tcpip" channel, like ``ssh -J``)
    jump_to_guests: bool = False

    _paths = field_validator("key")(_resolve)


class StallFault(Frozen):
    """Hold one secondary vCPU thread frozen past the guest's bring-up timeout with
    ``probability`` per boot (the FT-2500 symptom, made on purpose): on this machine
    directly, on a remote host (``ssh:`` set) by commands run over SSH on the host."""

    probability: Num = Field(ge=0.0, le=1.0)
    cpu: Int | None = Field(None, ge=1)  # None: a random secondary
    # long enough that the vCPU never comes up during the boot: a thaw just after the
    # guest gave up on the CPU (5 s) can hang a TCG guest (docs/local-lab.md)
    seconds: Num = Field(600.0, gt=0, le=3600)
    # thaw once the guest gave up on the CPU ("CPUn: failed to come online" on the serial
    # console) and finished bringing up the others, instead of after ``seconds``: the
    # vCPU then comes up late, as in the seed, and a later CPU_ON of it meets PSCI's
    # "already on" (cpu-cycle mode)
    thaw_after_failure: Bool = False


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
    source: Name = "br0"  # bridge or libvirt network name
    # where the guest's address is learnt, tried in this order at each poll: libvirt's
    # DHCP leases (libvirt networks), libvirt's ARP source, the host's neighbour table
    # read over SSH (``ip neigh``: bridged hosts without libvirt DHCP, or where libvirt's
    # ARP source fails)
    address_sources: tuple[Literal["lease", "arp", "host_neigh"], ...] = (
        "lease", "arp", "host_neigh")


class HostSpec(Frozen):
    uri: str = Field(max_length=2048)
    slots: Int = Field(1, ge=1, le=1024)
    attributes: dict[str, Scalar] = Field(default_factory=dict)
    ssh: HostSSH | None = None
    domain_type: Literal["kvm", "qemu"] | None = None  # default: kvm unless local TCG
    cpu_model: Name | None = None  # default: host-passthrough (kvm) / max (qemu)
    machine: Name = "virt"
    firmware: Firmware = Field(default_factory=Firmware)
    network: Network = Field(default_factory=Network)
    fault: Fault | None = None
    storage_dir: Path | None = None  # where per-boot overlays go on that host

    _paths = field_validator("storage_dir")(_resolve)

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        v = expand_cache(v)  # the local lab: qemu:///embed?root=${cache}/libvirt
        if any(c.isspace() for c in v):
            raise ValueError(f"a libvirt URI has no spaces or line breaks: {v!r}")
        try:
            parsed = urlparse(v)
            parsed.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError as exc:
            raise ValueError(f"not a libvirt URI: {v!r} ({exc})") from None
        if not parsed.scheme or "://" not in v:
            raise ValueError(f"not a libvirt URI: {v!r} (e.g. qemu+ssh://root@node-1/system)")
        try:
            kind_of(v)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return v

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        bad = sorted(set(v) & RESERVED_ATTRS)
        if bad:
            raise ValueError(f"attribute names {bad} are reserved for cell fields")
        for name, value in v.items():
            if problem := name_problem(name):
                raise ValueError(f"attribute {problem}")
            if isinstance(value, str) and ("\n" in value or "\r" in value):
                raise ValueError(f"attribute {name!r}: a value is one line of text")
        return v

    @property
    def is_sim(self) -> bool:
        return self.capabilities.simulated

    @property
    def capabilities(self) -> Capabilities:
        """What this host's backend can do (``harness.backend.registry``)."""
        return capabilities(self.uri)

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
    cmdline: Text | None = None

    _paths = field_validator("image", "kernel", "initrd")(_resolve)

    @model_validator(mode="after")
    def _one_way(self) -> GuestBoot:
        if (self.image is None) == (self.kernel is None):
            raise ValueError("give either 'image' (qcow2) or 'kernel' (direct boot), not both")
        if self.image is not None and (self.initrd or self.cmdline):
            raise ValueError("'initrd' and 'cmdline' go with 'kernel', not with 'image'")
        return self


class GuestSSH(Frozen):
    user: Name = "root"
    key: Path | None = None
    port: Int = Field(22, ge=1, le=65535)

    _paths = field_validator("key")(_resolve)


class GuestSpec(Frozen):
    boot: GuestBoot | None = None  # not needed by simulated hosts
    ssh: GuestSSH = Field(default_factory=GuestSSH)
    kernel_release: Text | None = None
    os: Text | None = None
    memory_mib: Int | None = Field(None, ge=64, le=1 << 22)
    fault: Fault | None = None


class SSHPolicy(Frozen):
    known_hosts: Path | None = None  # default: <lab dir>/known_hosts
    accept_new_host_keys: Bool = False  # guests that make new keys at each boot

    _paths = field_validator("known_hosts")(_resolve)


class LabSpec(Frozen):
    name: Name
    description: Text = ""
    hosts: dict[str, HostSpec] = Field(min_length=1)
    guests: dict[str, GuestSpec] = Field(min_length=1)
    ssh: SSHPolicy = Field(default_factory=SSHPolicy)
    sim: dict[str, Any] | None = None  # the simulated lab's model (harness.backend.sim)
    # the results database: an SQLite file (default reports/<lab>.db) or a postgresql:// URL
    results: Path | str | None = None

    @field_validator("results", mode="before")
    @classmethod
    def _results(cls, value: Any, info: ValidationInfo) -> Path | str | None:
        if value is None:
            return None
        if not isinstance(value, str | Path):
            raise ValueError("a file path or a postgresql:// URL")
        text = str(value)
        if text.startswith(("postgresql://", "postgres://")):
            return text
        if "://" in text:
            raise ValueError(f"unknown scheme {text.split('://', 1)[0]!r}: a file path "
                             "(SQLite) or postgresql://user@host[:port]/database")
        return _resolve(Path(text), info)


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
    """Load and validate a lab file: everything ``harness run`` relies on (the ``sim:``
    section, simulated URIs and their query, the results path) is checked here, so that
    ``harness plan`` refuses what ``run`` would and ``run`` writes nothing before."""
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
    lab = Lab(spec, doc)
    _check_sim(lab)
    if isinstance(spec.results, Path):
        problem = path_problem(spec.results)
        if problem:
            raise doc.error(("results",), f"results: {problem}")
    return lab


def _check_sim(lab: Lab) -> None:
    from harness.sim.model import load_sim_model, uri_seed

    if lab.spec.sim is not None:
        load_sim_model(lab)
    for name, host in lab.hosts.items():
        if host.is_sim:
            try:
                uri_seed(host.uri)
            except ConfigError as exc:
                raise lab.doc.error(("hosts", name, "uri"), exc.message) from None


def path_problem(path: Path, *, folder: bool = False) -> str | None:
    """Why a file (``folder``: a folder) cannot be created or written at ``path``, as far as
    can be told without writing anything (None: it looks fine)."""
    try:
        if path.exists():
            if folder and not path.is_dir():
                return f"{path} is a file, not a folder"
            if not folder and path.is_dir():
                return f"{path} is a folder, not a file"
            return None if os.access(path, os.W_OK) else f"{path} is not writable"
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            return f"{parent} is a file, so {path} cannot be created"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{path} cannot be created: {parent} is not writable"
    except (OSError, ValueError) as exc:
        return f"{path}: {getattr(exc, 'strerror', None) or exc}"
    return None


def _check_names(doc: YamlDoc) -> None:
    for section in ("hosts", "guests"):
        items = doc.data.get(section)
        if not isinstance(items, dict):
            continue
        for name in items:
            if problem := name_problem(name):
                raise ConfigError(f"{section[:-1]} {problem}",
                                  doc.loc((section, name), key=True))
