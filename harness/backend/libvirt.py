"""The libvirt backend, for any URI: ``qemu+ssh://root@node-1/system`` (lab hosts),
``qemu:///system`` or ``qemu:///embed?root=DIR`` (this machine), ``test:///...`` (tests).

The only module that imports ``libvirt`` / ``libvirt_qemu``. One connection per host,
shared by that host's slot threads (libvirt connections are thread-safe). Every libvirt
failure becomes a ``BackendError`` (an ``InfraError``): never a guest boot failure.

Per-boot files (qcow2 overlay, NVRAM copy, and on remote hosts the console log) go to the
host's ``storage_dir``: locally they are plain files (overlay made with ``qemu-img``), on
remote hosts and the test driver they are storage volumes of a ``dir`` pool on that folder.
Their paths are written into the domain's ``<metadata>`` so ``harness gc`` finds them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from hashlib import sha1
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlparse


def _libvirt_log_default() -> None:
    """libvirt's own log (the embedded QEMU driver would write it to our stderr, errors it
    also reports to us included) goes to a file: errors only, in the cache folder. Set
    LIBVIRT_LOG_OUTPUTS to choose otherwise. libvirt reads it when first imported."""
    if "LIBVIRT_LOG_OUTPUTS" in os.environ:
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = Path(os.environ.get("VMBH_CACHE") or base / "vm-boot-harness")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    os.environ["LIBVIRT_LOG_OUTPUTS"] = f"4:file:{folder / 'libvirt-client.log'}"


_libvirt_log_default()  # before libvirt initializes its logging at import

import libvirt  # noqa: E402

from harness.backend import domain_xml as dx  # noqa: E402
from harness.backend.base import BootRequest, GuestNotReady  # noqa: E402
from harness.backend.registry import capabilities, driver_of  # noqa: E402
from harness.errors import BackendError, CollectError  # noqa: E402
from harness.runinfo import controller_identity  # noqa: E402

if TYPE_CHECKING:
    from harness.inventory import Lab

T = TypeVar("T")
_event_lock = threading.Lock()
_event_started = False


def _silence(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; ours are raised instead."""


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread, once per
    process: ``qemu:///embed`` needs it, and remote connections use it for keepalive."""
    global _event_started
    with _event_lock:
        if _event_started:
            return
        libvirt.registerErrorHandler(_silence, None)
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _event_started = True


def _reason(exc: libvirt.libvirtError, default: str) -> str:
    msg = str(exc).lower()
    if "no space left" in msg or "disk quota" in msg:
        return "disk_full"
    if exc.get_error_domain() in (libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE) or \
            exc.get_error_code() in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_SYSTEM_ERROR,
                                     libvirt.VIR_ERR_RPC):
        return "libvirt_unreachable"
    return default


class LibvirtBackend:
    """``Backend`` for one libvirt URI."""

    def __init__(self, uri: str, *, host_command: Callable[[str], str] | None = None) -> None:
        self.uri = uri
        parsed = urlparse(uri)
        self.capabilities = capabilities(uri)  # the registry reads the URI, not us
        self.remote = self.capabilities.remote
        self.is_test = driver_of(uri) == "test"
        self.embed_root = (parse_qs(parsed.query).get("root", [None])[0]
                           if parsed.path == "/embed" else None)
        self.host_command = host_command  # runs a fixed command on the host (host dmesg)
        ensure_event_loop()
        self._pool_lock = threading.Lock()
        self._conn_lock = threading.Lock()
        self.conn = self._open()

    def _open(self) -> Any:
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise BackendError(f"cannot connect to libvirt at {self.uri}: {exc}",
                               reason="libvirt_unreachable") from exc
        if self.remote:
            with contextlib.suppress(libvirt.libvirtError):
                conn.setKeepAlive(5, 3)
        return conn

    def ensure_connected(self) -> None:
        """Reconnect when the connection died (host rebooted, libvirtd restarted, network
        cut): called before each boot, so one outage costs retries, not the whole run."""
        with self._conn_lock:
            try:
                if self.conn.isAlive():
                    return
            except libvirt.libvirtError:
                pass
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.close()
            self.conn = self._open()

    @classmethod
    def for_host(cls, lab: Lab, host_name: str, command_timeout: float = 60.0
                 ) -> LibvirtBackend:
        """The backend of a lab host; with ``ssh:`` set on a remote host, host-side
        evidence (host dmesg, QEMU log) is read over SSH to the host."""
        host = lab.host(host_name)
        parsed = urlparse(host.uri)
        if host.ssh is None or not parsed.hostname:
            return cls(host.uri)
        from harness.collect.ssh import HostSession, SSHConfig

        cfg = SSHConfig(user=host.ssh.user, key=host.ssh.key, known_hosts=lab.known_hosts,
                        port=host.ssh.port)
        address = host.ssh.host or parsed.hostname
        session = HostSession(address, cfg)  # one login, reused by every command

        def host_command(command: str) -> str:
            try:
                return session.run(command, command_timeout).stdout
            except GuestNotReady as exc:  # the host, not a guest, does not answer
                raise BackendError(f"host {host_name} ({address}) does not answer SSH: "
                                   f"{exc}", reason="host_unreachable") from exc
            except CollectError as exc:
                raise BackendError(f"host {host_name} ({address}): {exc}",
                                   reason="host_unreachable") from exc

        return cls(host.uri, host_command=host_command)

    def _call(self, what: str, fn: Callable[[], T], reason: str = "libvirt") -> T:
        try:
            return fn()
        except libvirt.libvirtError as exc:
            raise BackendError(f"libvirt {self.uri}: {what}: {exc}",
                               reason=_reason(exc, reason)) from exc

    # -- Backend protocol --------------------------------------------------------------

    def define(self, request: BootRequest) -> LibvirtDomain:
        self.ensure_connected()
        storage, _ = dx.storage_paths(request)
        meta = {
            **controller_identity(),
            "run": request.run_id,
            "cell": request.cell.id,
            "index": str(request.boot_index),
        }
        spec = dx.domain_spec(request, metadata=meta,
                              domain_type="test" if self.is_test else None)
        files = list(spec.files)
        if self.lookup(spec.name) is not None:  # before touching its files
            raise BackendError(f"libvirt {self.uri}: define {spec.name}: a domain with this "
                               "name exists already (left over? see 'harness gc')",
                               reason="define_refused", retryable=False)
        if self.capabilities.host_local:
            Path(storage).mkdir(parents=True, exist_ok=True)
        if isinstance(spec.boot, dx.UefiBoot):
            assert request.guest.boot is not None and request.guest.boot.image is not None
            self._make_overlay(storage, spec.boot.disk, str(request.guest.boot.image))
        xml = dx.to_xml(spec)
        try:
            dom = self._call(f"define {spec.name}", lambda: self.conn.defineXML(xml),
                             "define_refused")
        except BackendError:
            self.remove_files(files)
            raise
        return LibvirtDomain(self, dom, spec, request)

    def lookup(self, name: str) -> LibvirtDomain | None:
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise BackendError(f"libvirt {self.uri}: lookup {name}: {exc}",
                               reason=_reason(exc, "libvirt")) from exc
        return LibvirtDomain(self, dom, None, None)

    def list_domains(self, prefix: str = "hb-") -> list[str]:
        doms = self._call("list domains", lambda: self.conn.listAllDomains(0))
        return sorted(d.name() for d in doms if d.name().startswith(prefix))

    def close(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()

    # -- per-boot files ----------------------------------------------------------------

    def _make_overlay(self, storage: PurePosixPath, overlay: str, backing: str) -> None:
        if self.capabilities.host_local:
            Path(storage).mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing,
                 overlay], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                err = proc.stderr.strip()
                raise BackendError(f"cannot create overlay {overlay} on {backing}: {err}",
                                   reason="disk_full" if "No space" in err else "overlay")
            return
        pool = self._pool(storage)
        vol = ET.Element("volume")
        ET.SubElement(vol, "name").text = PurePosixPath(overlay).name
        ET.SubElement(vol, "capacity").text = "0"
        fmt = ET.SubElement(ET.SubElement(vol, "target"), "format")
        fmt.set("type", "qcow2")
        bs = ET.SubElement(vol, "backingStore")
        ET.SubElement(bs, "path").text = backing
        ET.SubElement(bs, "format").set("type", "qcow2")
        xml = ET.tostring(vol, encoding="unicode")
        self._call(f"create overlay {overlay}", lambda: pool.createXML(xml, 0), "overlay")

    def _pool(self, storage: PurePosixPath) -> Any:
        """A running ``dir`` pool on ``storage`` (an existing one, or a transient one)."""
        with self._pool_lock:
            for pool in self._call("list pools", lambda: self.conn.listAllStoragePools(0)):
                try:
                    root = ET.fromstring(pool.XMLDesc(0))
                except (libvirt.libvirtError, ET.ParseError):
                    continue
                if root.findtext("target/path") == str(storage):
                    try:
                        if not pool.isActive():
                            pool.create(0)
                        pool.refresh(0)
                    except libvirt.libvirtError as exc:
                        raise BackendError(f"libvirt {self.uri}: storage pool on {storage}: "
                                           f"{exc}", reason=_reason(exc, "storage")) from exc
                    return pool
            name = "hb-" + sha1(str(storage).encode()).hexdigest()[:10]
            el = ET.Element("pool", {"type": "dir"})
            ET.SubElement(el, "name").text = name
            ET.SubElement(ET.SubElement(el, "target"), "path").text = str(storage)
            xml = ET.tostring(el, encoding="unicode")
            # the test driver has no folders to build
            flags = 0 if self.is_test else libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD
            return self._call(f"create storage pool on {storage}",
                              lambda: self.conn.storagePoolCreateXML(xml, flags), "storage")

    def remove_files(self, paths: list[str]) -> list[str]:
        """Delete per-boot files; returns the ones removed. Missing files are fine."""
        removed = []
        for path in paths:
            if not path:
                continue
            if self.capabilities.host_local:
                try:
                    os.unlink(path)
                    removed.append(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
                continue
            try:
                vol = self.conn.storageVolLookupByPath(path)
                vol.delete(0)
                removed.append(path)
            except libvirt.libvirtError:
                continue
        return removed

    def list_files(self, folder: str) -> list[str]:
        """File names in a folder on the host (for gc); empty when it does not exist."""
        if self.capabilities.host_local:
            try:
                return sorted(os.listdir(folder))
            except OSError:
                return []
        pool = self._pool(PurePosixPath(folder))
        return sorted(self._call(f"list files in {folder}", lambda: pool.listVolumes()))

    def read_file(self, path: str) -> str:
        """A text file that libvirt writes on the host (console log): directly when local,
        as a storage volume download when remote; empty when it is not there (yet)."""
        if not self.remote:
            try:
                return Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                return ""
        with contextlib.suppress(libvirt.libvirtError, AttributeError):
            self.conn.storagePoolLookupByTargetPath(str(PurePosixPath(path).parent)).refresh(0)
        try:
            vol = self.conn.storageVolLookupByPath(path)
            stream = self.conn.newStream(0)
            chunks: list[bytes] = []
            vol.download(stream, 0, 0, 0)
            stream.recvAll(lambda _s, data, acc: acc.append(data), chunks)
            stream.finish()
        except libvirt.libvirtError:
            return ""
        return b"".join(chunks).decode("utf-8", "replace")

    def qemu_log_path(self, name: str) -> str:
        if self.embed_root:
            return str(Path(self.embed_root) / "log" / "qemu" / f"{name}.log")
        if urlparse(self.uri).path == "/session":
            return str(Path.home() / ".cache/libvirt/qemu/log" / f"{name}.log")
        return f"/var/log/libvirt/qemu/{name}.log"


class LibvirtDomain:
    """``Domain`` for one libvirt domain. Built by ``define`` (knows its spec) or by
    ``lookup`` (knows only what the domain's XML says: enough for gc)."""

    def __init__(self, backend: LibvirtBackend, dom: Any, spec: dx.DomainSpec | None,
                 request: BootRequest | None) -> None:
        self.backend = backend
        self.dom = dom
        self.name: str = dom.name()
        self.spec = spec
        self.request = request
        self.address_source: str | None = None  # where ssh_endpoint found the address

    def _call(self, what: str, fn: Callable[[], T], reason: str = "libvirt") -> T:
        return self.backend._call(f"{what} {self.name}", fn, reason)

    def start(self, paused: bool = False) -> None:
        if paused and self.backend.is_test:  # the test driver has no START_PAUSED
            self._call("start", lambda: self.dom.create(), "start_refused")
            self._call("pause", lambda: self.dom.suspend())
            return
        flags = libvirt.VIR_DOMAIN_START_PAUSED if paused else 0
        self._call("start", lambda: self.dom.createWithFlags(flags), "start_refused")

    def resume(self) -> None:
        self._call("resume", lambda: self.dom.resume())

    def destroy(self) -> None:
        try:
            if self.dom.isActive():
                self.dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN,
                                        libvirt.VIR_ERR_OPERATION_INVALID):
                return
            raise BackendError(f"libvirt {self.backend.uri}: destroy {self.name}: {exc}",
                               reason=_reason(exc, "libvirt")) from exc

    def reset(self) -> None:
        self._call("reset", lambda: self.dom.reset(0))

    def reboot(self) -> None:
        self._call("reboot", lambda: self.dom.reboot(0))

    def metadata(self) -> tuple[dict[str, str], list[str]]:
        """Our metadata attributes and per-boot files (empty for foreign domains)."""
        try:
            return dx.read_metadata(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            return {}, []

    def undefine(self) -> None:
        files = self.spec.files if self.spec is not None else self.metadata()[1]
        self.destroy()
        try:
            try:
                self.dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                self.dom.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise BackendError(f"libvirt {self.backend.uri}: undefine {self.name}: {exc}",
                                   reason=_reason(exc, "libvirt")) from exc
        self.backend.remove_files(list(files))

    def is_active(self) -> bool:
        try:
            return bool(self.dom.isActive())
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise BackendError(f"libvirt {self.backend.uri}: state of {self.name}: {exc}",
                               reason=_reason(exc, "libvirt")) from exc

    def console_path(self) -> str | None:
        if self.spec is not None:
            return self.spec.console_log
        try:
            return dx.serial_log_path(self.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            return None

    def console_text(self) -> str:
        path = self.console_path()
        return self.backend.read_file(path) if path else ""

    def evidence(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.backend.capabilities.host_local:
            with contextlib.suppress(OSError):
                out["qemu_log"] = Path(self.backend.qemu_log_path(self.name)).read_text(
                    encoding="utf-8", errors="replace")
        if self.backend.host_command is not None:
            from harness.collect.commands import HOST_DMESG, HOST_QEMU_LOG, SAFE_NAME

            wanted = {"host_dmesg": HOST_DMESG}
            if self.backend.remote and re.fullmatch(SAFE_NAME, self.name):
                wanted["qemu_log"] = HOST_QEMU_LOG.format(name=self.name)
            for key, cmd in wanted.items():
                try:
                    out[key] = self.backend.host_command(cmd)
                except Exception as exc:  # evidence is best effort; the boot is kept anyway
                    out[f"{key}_error"] = str(exc)
        versions = self.versions()
        if self.address_source is not None:
            versions["address_source"] = self.address_source
        out["versions"] = json.dumps(versions, sort_keys=True)
        return out

    def ssh_endpoint(self) -> tuple[str, int]:
        spec = self.spec
        if spec is not None and isinstance(spec.network, dx.UserNet):
            return spec.network.host, spec.network.port
        port = self.request.guest.ssh.port if self.request is not None else 22
        sources = (self.request.host.network.address_sources if self.request is not None
                   else ("lease", "arp"))
        for name in sources:
            addr = self._address(name)
            if addr is not None:
                self.address_source = name
                return addr, port
        raise GuestNotReady(f"{self.name}: no IPv4 address known yet "
                            f"(tried {', '.join(sources)})")

    def _address(self, source: str) -> str | None:
        if source == "host_neigh":
            if self.backend.host_command is None:
                return None
            from harness.backend.hostinfo import interface_macs, neigh_address
            from harness.collect.commands import HOST_NEIGH

            try:
                macs = interface_macs(self.dom.XMLDesc(0))
                return neigh_address(self.backend.host_command(HOST_NEIGH), macs) if macs \
                    else None
            except libvirt.libvirtError:
                return None
        flag = (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE if source == "lease"
                else libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP)
        try:
            ifaces = self.dom.interfaceAddresses(flag, 0)
        except libvirt.libvirtError:
            return None  # libvirt 9.0's ARP source fails on some kernels: next source
        for iface in (ifaces or {}).values():
            for addr in iface.get("addrs") or []:
                if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                    return str(addr["addr"])
        return None

    def versions(self) -> dict[str, str]:
        """What explains a result on this host: libvirt (the daemon's), and over SSH the
        host kernel, QEMU and the firmware file's digest. Best effort."""
        out: dict[str, str] = {}
        with contextlib.suppress(libvirt.libvirtError):
            from harness.backend.hostinfo import lib_version

            out["libvirt"] = lib_version(self.backend.conn.getLibVersion())
        spec = self.spec
        if spec is not None and isinstance(spec.boot, dx.UefiBoot):
            out["firmware"] = spec.boot.loader
        if self.backend.host_command is not None:
            import shlex

            from harness.backend.hostinfo import parse_versions
            from harness.collect.commands import HOST_FILE_DIGEST, HOST_VERSIONS

            try:
                out.update(parse_versions(self.backend.host_command(HOST_VERSIONS)))
                if "firmware" in out:
                    digest = self.backend.host_command(
                        HOST_FILE_DIGEST.format(path=shlex.quote(out["firmware"])))
                    if digest.split():
                        out["firmware_sha256"] = digest.split()[0][:16]
            except Exception as exc:  # best effort, like the other host evidence
                out["versions_error"] = str(exc)[:200]
        elif self.backend.capabilities.host_local:
            import platform

            out["host_kernel"] = platform.release()
            with contextlib.suppress(libvirt.libvirtError):
                from harness.backend.hostinfo import lib_version

                out["qemu"] = lib_version(self.backend.conn.getVersion())
        return out

    def vcpu_threads(self) -> dict[int, int]:
        """vCPU index -> host thread id (QMP ``query-cpus-fast``), e.g. to freeze one."""
        import libvirt_qemu

        cmd = json.dumps({"execute": "query-cpus-fast"})
        raw = self._call("query-cpus-fast",
                         lambda: libvirt_qemu.qemuMonitorCommand(self.dom, cmd, 0))
        return {int(c["cpu-index"]): int(c["thread-id"]) for c in json.loads(raw)["return"]}

    def vcpu_stats(self) -> dict[str, int]:
        """libvirt's per-vCPU statistics (``VIR_DOMAIN_STATS_VCPU``): ``vcpu.N.state``,
        ``vcpu.N.time`` (ns on the host CPU), and where the host kernel provides them
        ``vcpu.N.wait`` and ``vcpu.N.delay`` (ns waiting in the host's run queue)."""
        stats = self._call("vCPU statistics", lambda: self.backend.conn.domainListGetStats(
            [self.dom], libvirt.VIR_DOMAIN_STATS_VCPU))
        if not stats:
            return {}
        return {str(k): int(v) for k, v in stats[0][1].items()
                if isinstance(v, int | bool)}

    @property
    def host_is_local(self) -> bool:
        """QEMU runs on this machine (its threads can be read under /proc)."""
        return self.backend.capabilities.host_local
