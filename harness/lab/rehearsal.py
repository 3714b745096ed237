"""The rehearsal host: a remote libvirt host on this machine, reached only the way the
FT-2500 lab's hosts are (``qemu+ssh://root@ADDR/system``), for ``harness lab up`` /
``harness lab down``.

It is a network namespace (``vmbh-rh``) on a subnet of 198.18.0.0/15 that nothing on this
machine uses, joined to this machine by a veth pair, with a private mount namespace in
which ``/etc/libvirt``, ``/run/libvirt``, ``/var/lib/libvirt``, ``/var/log/libvirt`` and
``/var/cache/libvirt`` are the host's own folders (under ``<cache>/rehearsal/host``), so
its daemons never meet another libvirt on this machine. Inside it run:

- its own OpenSSH server (host key made here, the lab's key authorized), the only way in;
- ``virtlogd`` and ``libvirtd`` (``qemu:///system`` as on a lab host, QEMU as
  ``libvirt-qemu``);
- a libvirt network ``vmbh-guests`` with DHCP (dnsmasq) on a host-only bridge: the
  controller has no route to it, so guests are reached through the host as an SSH jump
  host (the lab file's ``ssh: {jump_to_guests: true}``).

Every process started is in the namespace, so ``down`` finds them all with
``ip netns pids`` and stops them by pid, then deletes the namespace (and with it the veth
pair, the bridge and the firewall rules).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError
from harness.lab import keys
from harness.lab.paths import Layout

SUPERNET = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking space only
NETWORK_NAME = "vmbh-guests"
BRIDGE = "vmbhbr0"  # inside the host's namespace
MAX_INSTANCE = 50
STORAGE_DIR = "/var/lib/libvirt/images/harness"
PRIVATE_DIRS = ("etc/libvirt", "run/libvirt", "var/lib/libvirt", "var/log/libvirt",
                "var/cache/libvirt")
QEMU_CONF = """# rehearsal host (written by `harness lab up`): libvirt's defaults, as on a lab host,
# but QEMU runs as root: the lab cache (base images, the pool of per-boot overlays) lives
# under the controller user's home, e.g. /root (mode 0700), which libvirt-qemu cannot
# traverse. A lab host keeps its pool under /var/lib/libvirt/images and the default user.
user = "root"
group = "root"
"""

Say = Callable[[str], None]


class RehearsalError(HarnessError):
    """The rehearsal host could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class HostLayout:
    """One rehearsal host. Instance 0 is ``matrices/labs/rehearsal-lab.yaml``'s
    (198.18.20.2); the integration tests use their own instance, so a test run and a
    rehearsal run on the same machine never share a namespace or a subnet."""

    root: Path  # <cache>/rehearsal or <cache>/rehearsal-<n>
    instance: int = 0

    @property
    def netns(self) -> str:
        return "vmbh-rh" if self.instance == 0 else f"vmbh-rh{self.instance}"

    @property
    def veth(self) -> str:
        return f"vmbh-rh{self.instance}o"

    @property
    def link_net(self) -> ipaddress.IPv4Network:  # controller .1, host .2
        return ipaddress.IPv4Network(f"198.18.{20 + 2 * self.instance}.0/30")

    @property
    def guest_net(self) -> ipaddress.IPv4Network:  # the host's libvirt network (DHCP)
        return ipaddress.IPv4Network(f"198.18.{21 + 2 * self.instance}.0/24")

    def controller_addr(self) -> str:
        return str(self.link_net.network_address + 1)

    def host_addr(self) -> str:
        return str(self.link_net.network_address + 2)

    def gateway_addr(self) -> str:
        return str(self.guest_net.network_address + 1)

    @property
    def private(self) -> Path:
        return self.root / "host"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def sshd_config(self) -> Path:
        return self.root / "sshd_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_wrapper(self) -> Path:
        return self.root / "ssh"

    @property
    def state(self) -> Path:
        return self.root / "state.json"


def host_layout(lay: Layout, instance: int = 0) -> HostLayout:
    if not 0 <= instance <= MAX_INSTANCE:
        raise RehearsalError(f"rehearsal host instance {instance} is not in 0..{MAX_INSTANCE}")
    hl = HostLayout(lay.root / ("rehearsal" if instance == 0 else f"rehearsal-{instance}"),
                    instance)
    assert all(n.subnet_of(SUPERNET) for n in (hl.link_net, hl.guest_net))  # type: ignore[arg-type]
    return hl


def uri(lay: Layout, instance: int = 0) -> str:
    hl = host_layout(lay, instance)
    return (f"qemu+ssh://root@{hl.host_addr()}/system?keyfile={lay.keys / 'id_ed25519'}"
            f"&command={hl.ssh_wrapper}&no_verify=1")


def network_xml(hl: HostLayout) -> str:
    net = hl.guest_net
    first = str(net.network_address + 10)
    last = str(net.network_address + 200)
    return (f"<network><name>{NETWORK_NAME}</name><bridge name='{BRIDGE}' stp='off'/>"
            f"<ip address='{hl.gateway_addr()}' netmask='{net.netmask}'><dhcp>"
            f"<range start='{first}' end='{last}'/></dhcp></ip></network>")


def sshd_config(hl: HostLayout, authorized: Path) -> str:
    return "\n".join([
        "# rehearsal host's sshd (written by `harness lab up`)",
        f"ListenAddress {hl.host_addr()}",
        "Port 22",
        f"HostKey {hl.host_key}",
        f"PidFile {hl.root / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "AllowTcpForwarding yes",
        "MaxStartups 50:30:100",
        "MaxSessions 50",
        "",
    ])


def ssh_wrapper(hl: HostLayout) -> str:
    """libvirt's ssh transport runs ``ssh``; this one keeps the user's known_hosts out of
    it (``no_verify=1`` alone would still write there) and checks the host's real key."""
    return ("#!/bin/sh\n# written by `harness lab up`: libvirt's qemu+ssh command\n"
            f"exec ssh -o UserKnownHostsFile={hl.known_hosts} -o GlobalKnownHostsFile=/dev/null "
            "-o BatchMode=yes -o ConnectTimeout=10 \"$@\"\n")


def start_script(hl: HostLayout) -> str:
    """Run inside ``ip netns exec NETNS unshare --mount --propagation private``."""
    lines = ["set -eu", "ip link set lo up"]
    for d in PRIVATE_DIRS:
        lines.append(f"mkdir -p /{d} {hl.private / d}")
        lines.append(f"mount --bind {hl.private / d} /{d}")
    lines += [
        "mkdir -p /run/sshd /var/lib/libvirt/images /var/lib/libvirt/qemu /var/log/libvirt/qemu",
        # pid files in the private /run/libvirt: the defaults (/run/virtlogd.pid,
        # /run/libvirtd.pid) are shared with any other libvirt on this machine
        "/usr/sbin/virtlogd -d -p /run/libvirt/virtlogd.pid",
        "/usr/sbin/libvirtd -d -p /run/libvirt/libvirtd.pid",
        f"/usr/sbin/sshd -f {hl.sshd_config} -E {hl.root / 'sshd.log'}",
    ]
    return "\n".join(lines) + "\n"


def _run(cmd: list[str], *, check: bool = True, input: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, input=input)
    except FileNotFoundError as exc:
        raise RehearsalError(f"{cmd[0]} is not installed: {exc}") from exc
    if check and proc.returncode != 0:
        raise RehearsalError(f"`{' '.join(cmd)}` failed ({proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc


def netns_exists(hl: HostLayout) -> bool:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return any(line.split()[0] == hl.netns for line in out.splitlines() if line.strip())


def subnet_conflicts(hl: HostLayout, route_text: str, addr_text: str) -> list[str]:
    """Routes or addresses on this machine that overlap the rehearsal subnets (pure):
    ``ip -o route`` and ``ip -o addr`` output (root namespace)."""
    out = []
    ours = (hl.link_net, hl.guest_net)
    veth = hl.veth
    for line in route_text.splitlines():
        dest = line.split()[0] if line.split() else ""
        if dest == "default" or not dest:
            continue
        if veth in line.split():
            continue  # our own link
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dest, strict=False)
            if any(net.version == o.version and net.overlaps(o) for o in ours):
                out.append(f"route {line.strip()}")
    for line in addr_text.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[1] == veth:
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_interface(parts[3]).network
            if any(net.version == o.version and net.overlaps(o) for o in ours):
                out.append(f"address {parts[3]} on {parts[1]}")
    return out


def _ensure_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    with contextlib.suppress(RehearsalError):
        _run(["groupadd", "--system", name])
    _run(["useradd", "--system", "--gid", name, "--no-create-home", "--home-dir",
          "/var/lib/libvirt/dnsmasq", "--shell", "/usr/sbin/nologin", name])


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(mode)
    tmp.replace(path)


def _prepare(lay: Layout, hl: HostLayout) -> None:
    lab_keys = keys.ensure_keys(lay.keys)
    hl.root.mkdir(parents=True, exist_ok=True)
    if not hl.host_key.exists():
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vmbh-rehearsal-host",
              "-f", str(hl.host_key)])
    pub = hl.host_key.with_name(hl.host_key.name + ".pub").read_text().split()
    _write(hl.known_hosts, f"{hl.host_addr()} {pub[0]} {pub[1]}\n")
    authorized = hl.root / "authorized_keys"
    _write(authorized, lab_keys.client_pub + "\n", 0o600)
    _write(hl.sshd_config, sshd_config(hl, authorized))
    _write(hl.ssh_wrapper, ssh_wrapper(hl), 0o755)
    etc = hl.private / "etc/libvirt"
    if etc.exists():
        shutil.rmtree(etc)
    etc.mkdir(parents=True)
    for f in Path("/etc/libvirt").glob("*.conf"):
        shutil.copyfile(f, etc / f.name)
    (etc / "qemu.conf").write_text(QEMU_CONF, encoding="utf-8")
    # a fresh host each time: no domains, networks or pools from an earlier rehearsal
    for d in PRIVATE_DIRS[1:]:
        p = hl.private / d
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)


def _wait(what: str, ok: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise RehearsalError(f"the rehearsal host: {what} did not come up in {seconds:g}s")
        time.sleep(0.2)


def up(lay: Layout, say: Say = lambda s: None, instance: int = 0) -> dict[str, str]:
    """Start the rehearsal host (idempotent: a running one is kept). Returns its facts."""
    if os.geteuid() != 0:
        raise RehearsalError("the rehearsal host needs root (network namespace, daemons); "
                             "run `sudo harness lab up`")
    hl = host_layout(lay, instance)
    if netns_exists(hl):
        st = status(lay, instance)
        if hl.state.exists() and st["sshd"] == st["libvirtd"] == "up":
            return facts(lay, instance)
        say("a half-started rehearsal host exists: removing it first")
        down(lay, say, instance)
    conflicts = subnet_conflicts(hl, _run(["ip", "-o", "route"]).stdout,
                                 _run(["ip", "-o", "addr"]).stdout)
    if conflicts:
        raise RehearsalError(f"the rehearsal subnets {hl.link_net}, {hl.guest_net} are in "
                             "use on this machine: " + "; ".join(conflicts))
    for tool in ("ip", "unshare", "/usr/sbin/sshd", "/usr/sbin/libvirtd", "/usr/sbin/virtlogd",
                 "dnsmasq", "iptables", "ssh", "virt-ssh-helper"):
        if shutil.which(tool) is None:
            raise RehearsalError(f"the rehearsal host needs {tool} (scripts/bootstrap.sh "
                                 "installs it)")
    _ensure_user("libvirt-dnsmasq")
    _prepare(lay, hl)
    ns = hl.netns
    say(f"network namespace {ns}: {hl.host_addr()} (this machine {hl.controller_addr()})")
    _run(["ip", "netns", "add", ns])
    try:
        plen = hl.link_net.prefixlen
        _run(["ip", "link", "add", hl.veth, "type", "veth", "peer", "name", "eth0",
              "netns", ns])
        _run(["ip", "addr", "add", f"{hl.controller_addr()}/{plen}", "dev", hl.veth])
        _run(["ip", "link", "set", hl.veth, "up"])
        _run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{hl.host_addr()}/{plen}",
              "dev", "eth0"])
        _run(["ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up"])
        script = hl.root / "start.sh"
        _write(script, start_script(hl), 0o755)
        say("starting virtlogd, libvirtd and sshd in it")
        _run(["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
              "sh", str(script)])
        _wait("sshd", lambda: (hl.root / "sshd.pid").exists(), 20)
        _write(hl.state, json.dumps({"netns": ns, "uri": uri(lay, instance),
                                     "started": time.time()}) + "\n")
        _define_network(lay, hl, say)
    except BaseException:
        with contextlib.suppress(Exception):
            down(lay, say, instance)
        raise
    return facts(lay, instance)


def _define_network(lay: Layout, hl: HostLayout, say: Say) -> None:
    import libvirt

    from harness.backend.libvirt import ensure_event_loop

    ensure_event_loop()
    deadline = time.monotonic() + 30
    u = uri(lay, hl.instance)
    while True:
        try:
            conn = libvirt.open(u)
            break
        except libvirt.libvirtError as exc:
            if time.monotonic() > deadline:
                raise RehearsalError(f"cannot reach libvirt at {u}: {exc}") from exc
            time.sleep(0.5)
    try:
        say(f"libvirt network {NETWORK_NAME} ({hl.guest_net}, DHCP) and a dir pool on "
            f"{STORAGE_DIR}")
        net = conn.networkDefineXML(network_xml(hl))
        net.create()
        net.setAutostart(1)
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>vmbh-harness</name><target><path>{STORAGE_DIR}"
            "</path></target></pool>", 0)
        pool.build(0)
        pool.create(0)
    except libvirt.libvirtError as exc:
        raise RehearsalError(f"the rehearsal host's libvirt refused the network or pool: "
                             f"{exc}") from exc
    finally:
        conn.close()


def pids(hl: HostLayout) -> list[int]:
    if not netns_exists(hl):
        return []
    out = _run(["ip", "netns", "pids", hl.netns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def daemon_pid(hl: HostLayout, comm: str) -> int | None:
    """The pid of one of the host's daemons (``sshd``, ``libvirtd``...), if running."""
    for pid in pids(hl):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                return pid
        except OSError:
            continue
    return None


def down(lay: Layout, say: Say = lambda s: None, instance: int = 0) -> list[str]:
    """Stop everything ``up`` started: domains (by killing their QEMU), dnsmasq,
    libvirtd, virtlogd, sshd (all by pid, all in the namespace), then the namespace."""
    hl = host_layout(lay, instance)
    done: list[str] = []
    procs = pids(hl)
    if procs:
        say(f"stopping {len(procs)} process(es) of the rehearsal host")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in procs):
                time.sleep(0.1)
            procs = [p for p in procs if _alive(p)]
            if not procs:
                break
        done.append("processes")
    if netns_exists(hl):
        _run(["ip", "netns", "del", hl.netns], check=False)
        done.append(f"netns {hl.netns}")
    if _run(["ip", "link", "show", hl.veth], check=False).returncode == 0:
        _run(["ip", "link", "del", hl.veth], check=False)
    for name in ("sshd.pid", "state.json"):
        with contextlib.suppress(FileNotFoundError):
            (hl.root / name).unlink()
    return done


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def status(lay: Layout, instance: int = 0) -> dict[str, str]:
    hl = host_layout(lay, instance)
    out = {"netns": "up" if netns_exists(hl) else "down"}
    procs: dict[str, int] = {}
    for pid in pids(hl):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        procs.setdefault(comm, pid)
    for name in ("sshd", "libvirtd", "virtlogd", "dnsmasq"):
        out[name] = "up" if name in procs else "down"
    out["uri"] = uri(lay, instance)
    out["known_hosts"] = str(hl.known_hosts)
    return out


def facts(lay: Layout, instance: int = 0) -> dict[str, str]:
    hl = host_layout(lay, instance)
    return {"uri": uri(lay, instance), "host": hl.host_addr(),
            "controller": hl.controller_addr(), "guest_net": str(hl.guest_net),
            "network": NETWORK_NAME, "storage": STORAGE_DIR,
            "known_hosts": str(hl.known_hosts)}
