"""libvirt domain XML from a typed model: pure functions, ElementTree, no string templates.

``domain_spec(request, ...)`` turns a ``BootRequest`` (cell + host + guest) into a frozen
``DomainSpec``; ``to_xml(spec)`` renders it. Nothing here touches libvirt or the disk, so
``harness domxml`` and the golden-file tests see exactly what the backend defines.

Every user string (names, paths, kernel command line) only ever becomes an XML attribute
value or text node, which ElementTree escapes (house rule 7).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from harness.backend.placement import NumaTune, PlacementError, placement
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.backend.base import BootRequest

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
HB_NS = "https://github.com/vm-boot-harness/domain/1"  # our <metadata> element
HB_PREFIX = "hb"
ET.register_namespace("qemu", QEMU_NS)
ET.register_namespace(HB_PREFIX, HB_NS)

# GICv2 addresses at most 8 CPUs; above that the virt machine needs GICv3
GICV2_MAX_CPUS = 8
DEFAULT_REMOTE_STORAGE = PurePosixPath("/var/lib/libvirt/images/harness")


@dataclass(frozen=True)
class NumaCell:
    id: int
    cpus: str  # guest vCPU list, e.g. "0-7"
    memory_mib: int


@dataclass(frozen=True)
class UefiBoot:
    """AAVMF firmware, a per-boot NVRAM copy, and a per-boot qcow2 overlay disk."""

    loader: str
    nvram_template: str
    nvram: str
    disk: str  # the overlay (its backing file is the guest image)
    disk_format: str = "qcow2"


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (a Debian arm64 vmlinuz boots as a raw Image)."""

    kernel: str
    initrd: str | None = None
    cmdline: str | None = None


@dataclass(frozen=True)
class BridgeNet:
    source: str
    kind: Literal["bridge", "network"] = "bridge"
    model: str = "virtio"


@dataclass(frozen=True)
class UserNet:
    """QEMU user-mode networking with the guest's SSH forwarded to ``host:port``.

    libvirt 9.0 has no hostfwd for ``<interface type='user'>``, so this becomes
    ``<qemu:commandline>``; the NIC gets ``romfile=`` because no iPXE ROM is installed."""

    port: int
    host: str = "127.0.0.1"
    guest_port: int = 22
    netdev_id: str = "hbnet0"


@dataclass(frozen=True)
class DomainSpec:
    name: str
    vcpus: int
    memory_mib: int
    boot: UefiBoot | KernelBoot
    network: BridgeNet | UserNet | None
    console_log: str
    domain_type: str = "kvm"  # kvm | qemu (TCG) | test
    arch: str = "aarch64"
    machine: str = "virt"
    cpu_mode: str = "host-passthrough"  # or a model name (cortex-a57, max)
    gic_version: int | None = None
    console_pty: bool = True
    numa: tuple[NumaCell, ...] = ()
    vcpu_cpuset: str | None = None  # host CPUs all vCPUs may run on
    vcpu_pins: tuple[tuple[int, str], ...] = ()  # vCPU -> host cpuset
    emulator_cpuset: str | None = None  # host CPUs of QEMU's emulator threads
    numatune: NumaTune | None = None  # host NUMA nodes the guest memory comes from
    emulator: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # written as <hb:boot key="value">
    files: tuple[str, ...] = ()  # per-boot files on the host: <hb:file> in <hb:boot>


def storage_paths(request: BootRequest) -> tuple[PurePosixPath, bool]:
    """Where this boot's overlay, NVRAM and (remote) console log go, and whether that
    folder is on a remote host. Locally, by default, the boot's own artifact folder."""
    remote = bool(urlparse(request.host.uri).hostname)
    if request.host.storage_dir is not None:
        return PurePosixPath(request.host.storage_dir), remote
    if remote:
        return DEFAULT_REMOTE_STORAGE, remote
    return PurePosixPath(request.workdir), remote


def domain_spec(request: BootRequest, *, metadata: dict[str, str] | None = None,
                domain_type: str | None = None) -> DomainSpec:
    """The domain for one boot request (pure). ``domain_type`` overrides the host's
    (the backend passes ``test`` for libvirt's test driver)."""
    cell, host, guest = request.cell, request.host, request.guest
    if guest.boot is None:
        raise ConfigError(f"guest {request.guest_name!r} has no 'boot' section: it cannot "
                          f"run on host {request.host_name!r} ({host.uri})")
    dtype = domain_type or host.effective_domain_type
    cpu_mode = host.cpu_model or ("host-passthrough" if dtype == "kvm" else "max")
    storage, _remote = storage_paths(request)
    name = request.domain_name
    boot: UefiBoot | KernelBoot
    if guest.boot.image is not None:
        boot = UefiBoot(
            loader=str(host.firmware.code),
            nvram_template=str(host.firmware.vars),
            nvram=str(storage / f"{name}_VARS.fd"),
            disk=str(storage / f"{name}.qcow2"),
        )
    else:
        assert guest.boot.kernel is not None
        boot = KernelBoot(
            kernel=str(guest.boot.kernel),
            initrd=str(guest.boot.initrd) if guest.boot.initrd else None,
            cmdline=guest.boot.cmdline,
        )
    net: BridgeNet | UserNet | None
    if host.network.type == "user":
        if request.ssh_port is None:
            raise ConfigError(f"host {request.host_name!r} uses user-mode networking: the "
                              "boot request needs an ssh_port to forward")
        net = UserNet(port=request.ssh_port, guest_port=guest.ssh.port)
    elif host.network.type == "network":
        net = BridgeNet(source=host.network.source, kind="network")
    else:
        net = BridgeNet(source=host.network.source)
    console = str(storage / f"{name}.console.log")
    # per-boot files, removed with the domain (and by gc)
    files = [boot.disk, boot.nvram] if isinstance(boot, UefiBoot) else []
    files.append(console)
    params = dict(cell.params)
    memory = guest.memory_mib or cell.memory_mib
    try:
        place = placement(params, cell.vcpus)
    except PlacementError as exc:
        raise ConfigError(f"cell {cell.id}: {exc}") from None
    return DomainSpec(
        name=name,
        vcpus=cell.vcpus,
        memory_mib=memory,
        boot=boot,
        network=net,
        console_log=console,
        domain_type=dtype,
        machine=host.machine,
        cpu_mode=cpu_mode,
        gic_version=3 if cell.vcpus > GICV2_MAX_CPUS else None,
        numa=numa_cells(cell.vcpus, memory, _int_param(params, "numa_nodes", cell.id)),
        vcpu_cpuset=place.vcpu_cpuset,
        vcpu_pins=place.vcpu_pins,
        emulator_cpuset=place.emulator_cpuset,
        numatune=place.numatune,
        metadata=tuple(sorted((metadata or {}).items())),
        files=tuple(files),
    )


def numa_cells(vcpus: int, memory_mib: int, nodes: int | None) -> tuple[NumaCell, ...]:
    """Split vCPUs and memory as evenly as possible over ``nodes`` guest NUMA cells."""
    if not nodes or nodes <= 1:
        return ()
    if nodes > vcpus:
        raise ConfigError(f"numa_nodes={nodes} is more than the {vcpus} vCPUs")
    out, first = [], 0
    for i in range(nodes):
        n = vcpus // nodes + (1 if i < vcpus % nodes else 0)
        mem = memory_mib // nodes + (memory_mib % nodes if i == nodes - 1 else 0)
        cpus = str(first) if n == 1 else f"{first}-{first + n - 1}"
        out.append(NumaCell(i, cpus, mem))
        first += n
    return tuple(out)


def _int_param(params: dict[str, object], key: str, cell_id: str) -> int | None:
    v = params.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"cell {cell_id}: {key} must be a positive integer, not {v!r}")
    return v


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def to_element(spec: DomainSpec) -> ET.Element:
    dom = ET.Element("domain", {"type": spec.domain_type})
    _sub(dom, "name", spec.name)
    if spec.metadata or spec.files:
        md = _sub(dom, "metadata")
        hb = ET.SubElement(md, f"{{{HB_NS}}}boot", dict(spec.metadata))
        for f in spec.files:
            ET.SubElement(hb, f"{{{HB_NS}}}file").text = f
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    vcpu_attrs = {"placement": "static"}
    if spec.vcpu_cpuset:
        vcpu_attrs["cpuset"] = spec.vcpu_cpuset
    _sub(dom, "vcpu", str(spec.vcpus), **vcpu_attrs)
    if spec.vcpu_pins or spec.emulator_cpuset:
        tune = _sub(dom, "cputune")
        for vcpu, cpuset in spec.vcpu_pins:
            _sub(tune, "vcpupin", vcpu=str(vcpu), cpuset=cpuset)
        if spec.emulator_cpuset:
            _sub(tune, "emulatorpin", cpuset=spec.emulator_cpuset)
    if spec.numatune is not None:
        _sub(_sub(dom, "numatune"), "memory", mode=spec.numatune.mode,
             nodeset=spec.numatune.nodeset)
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch=spec.arch, machine=spec.machine)
    if isinstance(spec.boot, UefiBoot):
        _sub(os_, "loader", spec.boot.loader, readonly="yes", type="pflash")
        _sub(os_, "nvram", spec.boot.nvram, template=spec.boot.nvram_template)
        _sub(os_, "boot", dev="hd")
    else:
        _sub(os_, "kernel", spec.boot.kernel)
        if spec.boot.initrd:
            _sub(os_, "initrd", spec.boot.initrd)
        if spec.boot.cmdline:
            _sub(os_, "cmdline", spec.boot.cmdline)
    # ACPI tables come from the UEFI firmware; a direct kernel boot uses the device tree
    acpi = isinstance(spec.boot, UefiBoot)
    if acpi or spec.gic_version is not None:
        feats = _sub(dom, "features")
        if acpi:
            _sub(feats, "acpi")
        if spec.gic_version is not None:
            _sub(feats, "gic", version=str(spec.gic_version))
    if spec.cpu_mode == "host-passthrough":
        cpu = _sub(dom, "cpu", mode="host-passthrough", check="none")
    elif spec.cpu_mode in ("max", "maximum"):
        cpu = _sub(dom, "cpu", mode="maximum", check="none")
    else:
        cpu = _sub(dom, "cpu", mode="custom", match="exact", check="none")
        _sub(cpu, "model", spec.cpu_mode, fallback="forbid")
    if spec.numa:
        numa = _sub(cpu, "numa")
        for c in spec.numa:
            _sub(numa, "cell", id=str(c.id), cpus=c.cpus, memory=str(c.memory_mib), unit="MiB")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devs = _sub(dom, "devices")
    if spec.emulator:
        _sub(devs, "emulator", spec.emulator)
    if isinstance(spec.boot, UefiBoot):
        disk = _sub(devs, "disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=spec.boot.disk_format, cache="unsafe")
        _sub(disk, "source", file=spec.boot.disk)
        _sub(disk, "target", dev="vda", bus="virtio")
    if isinstance(spec.network, BridgeNet):
        iface = _sub(devs, "interface", type=spec.network.kind)
        _sub(iface, "source", **{spec.network.kind: spec.network.source})
        _sub(iface, "model", type=spec.network.model)
        # no option ROM: UEFI does not need iPXE to boot from disk, and without the
        # ipxe-qemu package (lab hosts may lack it) QEMU fails to start the domain:
        # 'failed to find romfile "efi-virtio.rom"'
        _sub(iface, "rom", enabled="no")
    serial = _sub(devs, "serial", type="pty" if spec.console_pty else "null")
    _sub(serial, "log", file=spec.console_log, append="off")
    _sub(serial, "target", type="system-serial", port="0")
    _sub(devs, "memballoon", model="none")
    if isinstance(spec.network, UserNet):
        n = spec.network
        qcl = ET.SubElement(dom, f"{{{QEMU_NS}}}commandline")
        netdev = (f"user,id={n.netdev_id},"
                  f"hostfwd=tcp:{n.host}:{n.port}-:{n.guest_port}")
        for arg in ("-netdev", netdev, "-device",
                    f"virtio-net-pci,netdev={n.netdev_id},romfile="):
            ET.SubElement(qcl, f"{{{QEMU_NS}}}arg", {"value": arg})
    return dom


def to_xml(spec: DomainSpec) -> str:
    """The domain XML, indented, ending with a newline."""
    el = to_element(spec)
    ET.indent(el, space="  ")
    return ET.tostring(el, encoding="unicode") + "\n"


def domain_xml(request: BootRequest, *, metadata: dict[str, str] | None = None,
               domain_type: str | None = None) -> str:
    return to_xml(domain_spec(request, metadata=metadata, domain_type=domain_type))


def read_metadata(xml: str) -> tuple[dict[str, str], list[str]]:
    """Our ``<hb:boot>`` attributes and per-boot files from a domain XML (empty when
    the domain is not ours)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}, []
    el = root.find(f"metadata/{{{HB_NS}}}boot")
    if el is None:
        return {}, []
    return dict(el.attrib), [f.text or "" for f in el.findall(f"{{{HB_NS}}}file") if f.text]


def serial_log_path(xml: str) -> str | None:
    root = ET.fromstring(xml)
    el = root.find("devices/serial/log")
    return el.get("file") if el is not None else None
