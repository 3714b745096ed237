"""SSH collection against a real OpenSSH server on a loopback port.

The server has its own host key and one authorized key; a ForceCommand script plays the
guest: it answers the fixed commands from prepared files (dmesg, cpu online/present; an
``online.sh`` replaces the online answer with a script: fail, print nothing, die, ...) and
can be told to hang in the middle of a command. Faults: connection refused, a server that
accepts and never sends a banner, login refused, unknown and changed host keys, a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.backend.base import GuestNotReady
from harness.collect import commands
from harness.collect.commands import CommandTimeout
from harness.collect.ssh import SSHConfig, SSHConnector, open_session
from harness.errors import InfraError
from harness.model import Cell, Outcome, Timeouts

pytestmark = pytest.mark.integration
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
    pytest.skip("OpenSSH server missing: install Debian package openssh-server",
                allow_module_level=True)

DATA = Path(__file__).parent.parent / "data" / "ssh"

GUEST_SH = """#!/bin/sh
# plays the guest: answers the harness's fixed commands from prepared files
d="$(dirname "$0")/guest"
if [ -e "$d/hang" ] && [ "$SSH_ORIGINAL_COMMAND" = "$(cat "$d/hang")" ]; then
    echo $$ >> "$d/hung.pids"   # the test ends this process by its pid
    echo "partial output"
    exec sleep 20
fi
case "$SSH_ORIGINAL_COMMAND" in
  "dmesg") cat "$d/dmesg.txt" ;;
  "cat /sys/devices/system/cpu/online")
    if [ -e "$d/online.sh" ]; then . "$d/online.sh"; else cat "$d/online"; fi ;;
  "cat /sys/devices/system/cpu/present") cat "$d/present" ;;
  "uname -r") echo 4.18.0-147.5.1.el8_1.5es.11.aarch64 ;;
  "nproc") echo 7 ;;
  "cat /proc/sys/kernel/random/boot_id") echo 2b4f6c0e-6a51-4c1e-9a8e-3f3d1f0c9b77 ;;
  *) echo "unknown command: $SSH_ORIGINAL_COMMAND" >&2; exit 127 ;;
esac
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "harness-test",
                    "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class Server:
    dir: Path
    port: int
    key: Path  # the authorized client key
    other_key: Path  # a key the server does not accept
    known_hosts: Path
    host_pub: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "sshd.log", "wb"),  # noqa: SIM115
            start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.dir / "sshd.log").read_text()) from None
                time.sleep(0.05)
        raise RuntimeError("sshd did not listen within 10s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the listener and its process group
            self.proc.wait(timeout=10)
        hung = self.dir / "guest" / "hung.pids"
        if hung.exists():  # sessions run in their own sessions: end the hung ones by pid
            for pid in {int(p) for p in hung.read_text().split()}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def cfg(self, **kw: object) -> SSHConfig:
        base: dict[str, object] = {"user": "root", "key": self.key,
                                   "known_hosts": self.known_hosts}
        base.update(kw)
        return SSHConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    d = tmp_path / "sshd"
    (d / "guest").mkdir(parents=True)
    host_pub = keygen(d / "host_ed25519")
    client_pub = keygen(d / "client_ed25519")
    keygen(d / "other_ed25519")
    (d / "authorized_keys").write_text(client_pub + "\n")
    (d / "guest.sh").write_text(GUEST_SH)
    (d / "guest.sh").chmod(0o755)
    for name in ("dmesg.txt", "online", "present"):
        shutil.copy(DATA / name, d / "guest" / name)
    port = free_port()
    user = os.environ.get("USER") or "root"
    (d / "sshd_config").write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {d / "host_ed25519"}
PidFile {d / "sshd.pid"}
AuthorizedKeysFile {d / "authorized_keys"}
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers {user}
ForceCommand {d / "guest.sh"}
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    srv = Server(d, port, d / "client_ed25519", d / "other_ed25519", known, host_pub)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Endpoint:
    """The smallest Domain the connector needs."""

    name = "hb-test-ssh-0"

    def __init__(self, port: int) -> None:
        self.port = port

    def ssh_endpoint(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


def test_collects_the_fixed_commands(server: Server) -> None:
    chan = SSHConnector(server.cfg()).connect(Endpoint(server.port), 5)  # type: ignore[arg-type]
    try:
        out = {name: chan.run(cmd, 10) for name, cmd in commands.GUEST_COLLECT}
    finally:
        chan.close()
    assert out["online"].stdout == "0-2,4-7\n"
    assert out["present"].stdout == "0-7\n"
    assert out["uname_r"].stdout.strip() == "4.18.0-147.5.1.el8_1.5es.11.aarch64"
    assert out["nproc"].stdout == "7\n"
    assert out["dmesg"].stdout == (DATA / "dmesg.txt").read_text()
    assert all(r.exit_status == 0 for r in out.values())
    assert chan.accepted_keys == []


def test_exit_status_and_stderr_are_kept(server: Server) -> None:
    chan = open_session("127.0.0.1", server.port, server.cfg(), 5)
    try:
        res = chan.run("true", 5)  # not a command the fake guest knows
    finally:
        chan.close()
    assert res.exit_status == 127 and "unknown command: true" in res.stderr


def test_connection_refused_is_not_ready() -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(GuestNotReady, match=f"127.0.0.1:{port}"):
        open_session("127.0.0.1", port, SSHConfig(), 5)
    assert time.monotonic() - t0 < 3


def test_no_banner_is_not_ready() -> None:
    """A port that accepts and says nothing (a guest whose sshd is not up yet behind a
    user-mode forward behaves like this): not ready, after the timeout, not before."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    port = lsock.getsockname()[1]
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                conn, _ = lsock.accept()
                held.append(conn)
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    try:
        t0 = time.monotonic()
        with pytest.raises(GuestNotReady):
            open_session("127.0.0.1", port, SSHConfig(), 1.0)
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 5
    finally:
        lsock.close()
        for c in held:
            c.close()


def test_login_refused_is_infra_ssh_auth(server: Server) -> None:
    with pytest.raises(InfraError) as err:
        open_session("127.0.0.1", server.port, server.cfg(key=server.other_key), 5)
    assert err.value.reason == "ssh_auth"
    assert "refused" in str(err.value)


def test_unknown_host_key_is_refused_unless_the_lab_says_so(server: Server,
                                                             tmp_path: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(InfraError) as err:
        open_session("127.0.0.1", server.port, server.cfg(known_hosts=empty), 5)
    assert err.value.reason == "ssh_host_key" and not err.value.retryable
    assert "accept_new_host_keys" in str(err.value) and str(empty) in str(err.value)
    chan = open_session("127.0.0.1", server.port,
                        server.cfg(known_hosts=empty, accept_new_host_keys=True), 5)
    try:
        assert chan.run(commands.NPROC, 5).stdout == "7\n"
    finally:
        chan.close()
    assert len(chan.accepted_keys) == 1 and "ssh-ed25519" in chan.accepted_keys[0]
    assert empty.read_text() == ""  # never written back


def test_changed_host_key_is_refused(server: Server, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong_known_hosts"
    other_pub = server.other_key.with_suffix(".pub").read_text().split()[:2]
    wrong.write_text(f"[127.0.0.1]:{server.port} {' '.join(other_pub)}\n")
    for accept in (False, True):  # accepting *new* keys never accepts a *changed* one
        with pytest.raises(InfraError) as err:
            open_session("127.0.0.1", server.port,
                         server.cfg(known_hosts=wrong, accept_new_host_keys=accept), 5)
        assert err.value.reason == "ssh_host_key"


def test_hang_mid_command_times_out(server: Server) -> None:
    (server.dir / "guest" / "hang").write_text(commands.DMESG)
    chan = open_session("127.0.0.1", server.port, server.cfg(), 5)
    try:
        assert chan.run(commands.NPROC, 5).stdout == "7\n"
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout) as err:
            chan.run(commands.DMESG, 1.5)
        assert 1.4 <= time.monotonic() - t0 < 5
        assert str(err.value) == "command 'dmesg' did not finish within 1.5s"
        # the session is still usable for the next command
        assert chan.run(commands.CPU_ONLINE, 5).stdout == "0-2,4-7\n"
    finally:
        chan.close()


def test_boot_loop_collects_over_real_ssh(server: Server, tmp_path: Path) -> None:
    """The boot loop end to end with a scripted domain whose SSH is the real server,
    which only starts listening a while after the domain started."""
    from harness.bootloop import BootLoop
    from harness.inventory import load_lab
    from harness.model import Cell, Outcome, Timeouts
    from harness.testing.fakes import FakeBackend, Script
    from harness.testing.sink import JsonlSink

    server.stop()
    lab = load_lab(Path(__file__).parent.parent / "data" / "bootloop" / "lab.yaml")
    backend = FakeBackend([Script(not_ready=0)])
    connector = SSHConnector(server.cfg())
    loop = BootLoop(lambda h: backend, lambda h, g: connector, JsonlSink(tmp_path / "r.jsonl"),
                    lab, tmp_path / "run", "r1", poll_s=0.2,
                    ssh_port_for=lambda h: server.port)
    cell = Cell(id="local/tiny/vcpu8", matrix="t", host="local", guest="tiny", vcpus=8,
                boots=1, timeouts=Timeouts(boot=30, ssh=2, command=10))
    timer = threading.Timer(1.0, server.start)
    timer.start()
    try:
        (r,) = list(loop.run_chunk(cell, [0]))
    finally:
        timer.join()
    assert r.outcome is Outcome.VCPU_OFFLINE, r.reason
    assert r.offline_cpus == (3,)
    assert r.kernel_release == "4.18.0-147.5.1.el8_1.5es.11.aarch64"
    assert any(f.kind == "cpu_failed_online" and f.cpu == 3 for f in r.findings)
    events = dict(r.timings)
    assert events["ssh_up"] - events["start"] >= 0.9  # it waited for the late server
    assert (tmp_path / "run" / cell.folder / "0" / "dmesg.txt").read_text() == (
        DATA / "dmesg.txt").read_text()
    assert backend.defined == {}


def test_host_evidence_over_ssh(server: Server, tmp_path: Path) -> None:
    """Host-side evidence: the backend runs the fixed host command over SSH to the host
    (here the test server plays the host; the domain lives on libvirt's test driver)."""
    pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    from harness.backend.base import BootRequest
    from harness.backend.libvirt import LibvirtBackend
    from harness.collect.ssh import run_on_host
    from harness.inventory import GuestSpec, HostSpec
    from harness.model import Cell

    node = (Path(__file__).parent.parent / "data" / "libvirt" / "ft2500-node.xml").resolve()
    cfg = server.cfg(port=server.port)
    backend = LibvirtBackend(f"test://{node}",
                             host_command=lambda c: run_on_host("127.0.0.1", cfg, c, 10).stdout)
    guest = GuestSpec.model_validate({"boot": {"kernel": "/boot/vmlinuz"}})
    cell = Cell(id="h/g/vcpu2", matrix="t", host="h", guest="g", vcpus=2, boots=1)
    req = BootRequest(run_id="r", cell=cell, host_name="h",
                      host=HostSpec(uri=f"test://{node}", network={"type": "bridge"}),
                      guest_name="g", guest=guest, domain_name="hb-r-h.g.vcpu2-0",
                      boot_index=0, workdir=tmp_path)
    dom = backend.define(req)
    try:
        ev = dom.evidence()
    finally:
        dom.undefine()
        backend.close()
    assert ev["host_dmesg"] == (DATA / "dmesg.txt").read_text()


def test_host_key_alias_checks_the_guest_key_on_any_port(server: Server,
                                                          tmp_path: Path) -> None:
    """known_hosts lists the guest by name; the forwarded port does not matter."""
    by_name = tmp_path / "by_name"
    by_name.write_text(f"deb12-arm64 {server.host_pub}\n")
    chan = open_session("127.0.0.1", server.port,
                        server.cfg(known_hosts=by_name, host_key_alias="deb12-arm64"), 5)
    try:
        assert chan.run(commands.NPROC, 5).stdout == "7\n"
        assert chan.accepted_keys == []  # verified, not merely accepted
    finally:
        chan.close()
    other_pub = server.other_key.with_suffix(".pub").read_text().split()[:2]
    by_name.write_text(f"deb12-arm64 {' '.join(other_pub)}\n")
    for accept in (False, True):  # a different key under the alias is never accepted
        with pytest.raises(InfraError, match="differs from the one") as err:
            open_session("127.0.0.1", server.port,
                         server.cfg(known_hosts=by_name, host_key_alias="deb12-arm64",
                                    accept_new_host_keys=accept), 5)
        assert err.value.reason == "ssh_host_key"


# what the guest's `cat /sys/devices/system/cpu/online` does -> (outcome, reason)
ONLINE_ROUTES = {
    "permission_denied": (
        'echo "cat: /sys/devices/system/cpu/online: Permission denied" >&2; exit 1',
        Outcome.BOOT_FAILURE,
        "collection failed: online: exit 1: cat: /sys/devices/system/cpu/online: "
        "Permission denied"),
    "empty_answer": ("exit 0", Outcome.BOOT_FAILURE, "collection failed: online: empty answer"),
    "closed_channel": (
        "kill -9 $$", Outcome.BOOT_FAILURE,
        "collection failed: online: the channel closed without an exit status"),
    "banner_first": (
        "printf 'Welcome to es11 (GNU/Linux 4.18.0 aarch64)\\n0-7\\n'", Outcome.BOOT_FAILURE,
        "collection failed: online: not a CPU list: "
        "'Welcome to es11 (GNU/Linux 4.18.0 aarch64)\\n0-7'"),
    "huge_range": ("echo 0-99999", Outcome.BOOT_FAILURE,
                   "collection failed: online: not a CPU list: '0-99999'"),
    "huge_number": ("echo 0-3,123456789012345678901234567890", Outcome.BOOT_FAILURE,
                    "collection failed: online: not a CPU list: "
                    "'0-3,123456789012345678901234567890'"),
    "minus_one": ("echo -1", Outcome.BOOT_FAILURE,
                  "collection failed: online: not a CPU list: '-1'"),
    "all_online": ("echo 0-7", Outcome.OK, ""),
}

HUGE_DMESG = """\
[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x662f6620]
[    0.000000] Linux version 4.18.0-147.5.1.el8_1.5es.11.aarch64 (mockbuild@kojibuilder) #1 SMP
[    0.101000] smp: Bringing up secondary CPUs ...
[    5.124952] CPU99999999999999999999999: failed to come online
[    5.125000] psci: failed to boot CPU3 (-99999999999999999999999)
[    5.125100] CPU18446744073709551616: Booted secondary processor 0x0000000001 [0x662f6620]
[    5.126000] smp: Brought up 1 node, 99999999999999999999999 CPUs
[    5.127000] Kernel panic - not syncing: CPU99999999999999999999: detected unsupported config
"""


@pytest.mark.parametrize("route", sorted(ONLINE_ROUTES))
def test_online_list_routes_through_loop_decision_and_store(server: Server, tmp_path: Path,
                                                            route: str) -> None:
    """Every way the online read can go wrong on a real SSH channel, through the boot
    loop, the decision and the SQLite store: never vcpu_offline, one row, no exception.
    The dmesg carries numbers no integer column can hold."""
    from harness.bootloop import BootLoop
    from harness.inventory import load_lab
    from harness.store import Store
    from harness.testing.fakes import FakeBackend, Script

    script, outcome, reason = ONLINE_ROUTES[route]
    guest = server.dir / "guest"
    (guest / "online.sh").write_text(script + "\n")
    (guest / "dmesg.txt").write_text(HUGE_DMESG)
    lab = load_lab(Path(__file__).parent.parent / "data" / "bootloop" / "lab.yaml")
    backend = FakeBackend([Script(not_ready=0)])
    cell = Cell(id=f"local/tiny/{route}", matrix="t", host="local", guest="tiny", vcpus=8,
                boots=1, timeouts=Timeouts(boot=30, ssh=5, command=10))
    with Store(tmp_path / "r.db") as store:
        store.create_run("r1", "t", [cell])
        loop = BootLoop(lambda h: backend, lambda h, g: SSHConnector(server.cfg()), store,
                        lab, tmp_path / "run", "r1", poll_s=0.2,
                        ssh_port_for=lambda h: server.port)
        (r,) = list(loop.run_chunk(cell, [0]))
        rows = store.boots("r1")
    assert (r.outcome, r.reason) == (outcome, reason)
    assert [(b.index, b.outcome, b.reason) for b in rows] == [(0, outcome, reason)]
    extra = dict(r.extra)
    if outcome is not Outcome.OK:
        assert extra["unusable"]["online"] == reason.removeprefix("collection failed: ")
    assert rows[0].cpus_brought_up == r.cpus_brought_up  # bounded: a column holds it
    assert any("99999999999999999999999" in f.text for f in rows[0].findings)
    meta = json.loads((tmp_path / "run" / cell.folder / "0" / "meta.json").read_text())
    online = next(c for c in meta["commands"] if c["name"] == "online")
    if route == "permission_denied":
        assert online["exit_status"] == 1 and "Permission denied" in online["stderr"]
    if route == "closed_channel":
        assert online["exit_status"] is None and online["fault"] == "no_status"
    assert backend.defined == {}


def test_output_past_the_limit_is_cut_while_streaming_and_flagged(server: Server) -> None:
    """A guest that prints without end: kept up to the limit, read to the end, flagged."""
    from harness.collect.ssh import _drain

    (server.dir / "guest" / "online.sh").write_text(
        "head -c 3000000 /dev/zero | tr '\\0' 7; head -c 200000 /dev/zero >&2; exit 0\n")
    chan = open_session("127.0.0.1", server.port, server.cfg(), 5)
    try:
        transport = chan.client.get_transport()
        assert transport is not None
        session = transport.open_session(timeout=5)
        res = _drain(session, commands.CPU_ONLINE, 30, out_limit=1 << 20, err_limit=1000)
        session.close()
    finally:
        chan.close()
    assert res.exit_status == 0
    assert len(res.stdout) == 1 << 20 and set(res.stdout) == {"7"} and res.stdout_truncated
    assert len(res.stderr) == 1000 and res.stderr_truncated
