"""SSH to guests (and hosts) with paramiko: the only module that imports it.

Errors are mapped so the boot loop can tell a guest that is not up yet from a lab problem:

- connection refused, timed out, reset, no SSH banner  -> ``GuestNotReady`` (keep polling)
- the server answers but refuses the login             -> ``InfraError(reason="ssh_auth")``
- an unknown or changed host key                       -> ``InfraError(reason="ssh_host_key")``
- a command that gives no exit status in time           -> ``CommandTimeout``

Host keys: the lab's known_hosts file, looked up as ``[host]:port`` and then under the
guest's name (``host_key_alias``: a forwarded port changes at every boot, the guest's key
does not). Keys of unknown hosts are refused unless the lab says
``ssh: {accept_new_host_keys: true}`` (guests that make new keys at every boot), in which
case they are accepted for that session and not written back. Never silent auto-add.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from harness.backend.base import CommandResult, Domain, GuestNotReady
from harness.collect.commands import CommandTimeout
from harness.errors import CollectError, InfraError
from harness.evidence import STDERR_LIMIT, STDOUT_LIMIT

__all__ = ["CommandTimeout", "HostSession", "JumpHost", "SSHChannel", "SSHConfig", "SSHConnector",
           "key_problem", "known_hosts_problem", "open_session"]

# paramiko logs every failed banner read with a traceback at ERROR level; while a guest
# boots that is expected, and the error is mapped and raised here instead
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

READ_CHUNK = 1 << 16
POLL_S = 0.02


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Called when known_hosts has no entry for ``[host]:port``. Checks the key against
    the entries of ``alias`` (the guest's name: a forwarded port changes at every boot, the
    guest's key does not); else accepts it for this session only when the lab says so."""

    def __init__(self, known_hosts: Path, alias: str | None, accept_new: bool) -> None:
        self.known_hosts = known_hosts
        self.alias = alias
        self.accept_new = accept_new
        self.accepted: list[str] = []

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        shown = f"{key.get_name()} {key.fingerprint}"
        known = client.get_host_keys().lookup(self.alias) if self.alias else None
        if known is not None and key.get_name() in known:
            if known[key.get_name()] == key:
                return
            raise InfraError(
                f"SSH host key of {hostname} ({shown}) differs from the one {self.known_hosts} "
                f"lists for {self.alias!r}", reason="ssh_host_key", retryable=False)
        if self.accept_new:
            self.accepted.append(f"{hostname} {shown}")
            return
        where = f"{hostname} or {self.alias}" if self.alias else hostname
        raise InfraError(
            f"SSH host key of {hostname} ({shown}) is not in {self.known_hosts} (as {where}); "
            "add it there, or set 'ssh: {accept_new_host_keys: true}' in the lab file for "
            "guests that make new keys at each boot", reason="ssh_host_key", retryable=False)


@dataclass(frozen=True)
class SSHConfig:
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None
    accept_new_host_keys: bool = False
    port: int | None = None  # overrides the domain's endpoint port (bridged guests: 22)
    host_key_alias: str | None = None  # known_hosts name checked when [host]:port is absent


class SSHChannel:
    """A logged-in session; ``run`` executes one fixed command with a timeout."""

    def __init__(self, client: paramiko.SSHClient, accepted_keys: list[str]) -> None:
        self.client = client
        self.accepted_keys = accepted_keys
        self._lock = threading.Lock()

    def run(self, command: str, timeout: float) -> CommandResult:
        with self._lock:
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                raise CollectError(f"SSH session closed before {command!r}")
            try:
                chan = transport.open_session(timeout=timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise CollectError(f"SSH session failed before {command!r}: {exc}") from exc
            try:
                return _drain(chan, command, timeout)
            finally:
                chan.close()

    def close(self) -> None:
        self.client.close()


def _drain(chan: paramiko.Channel, command: str, timeout: float,
           out_limit: int = STDOUT_LIMIT, err_limit: int = STDERR_LIMIT) -> CommandResult:
    """Read both streams until the exit status; each is kept up to its limit while it
    streams (the rest is read and dropped, and the result says it was cut)."""
    deadline = time.monotonic() + timeout
    chan.exec_command(command)
    out = _Bounded(out_limit)
    err = _Bounded(err_limit)
    while True:
        busy = False
        if chan.recv_ready():
            out.add(chan.recv(READ_CHUNK))
            busy = True
        if chan.recv_stderr_ready():
            err.add(chan.recv_stderr(READ_CHUNK))
            busy = True
        if (not busy and chan.exit_status_ready() and not chan.recv_ready()
                and not chan.recv_stderr_ready()):
            break
        if chan.closed and not busy and not chan.recv_ready():
            break
        if time.monotonic() > deadline:
            raise CommandTimeout(command, timeout)
        if not busy:
            chan.status_event.wait(POLL_S)
    status = chan.recv_exit_status() if chan.exit_status_ready() else None
    if status == -1:  # paramiko's "the server sent none"
        status = None
    return CommandResult(status, out.text(), err.text(), out.cut, err.cut)


class _Bounded:
    """Bytes kept up to a limit; what comes after is counted, not kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.cut = False

    def add(self, data: bytes) -> None:
        room = self.limit - self.size
        if len(data) > room:
            self.cut = True
            data = data[:max(room, 0)]
        if data:
            self.parts.append(data)
            self.size += len(data)

    def text(self) -> str:
        return b"".join(self.parts).decode("utf-8", "replace")


def key_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as an SSH private key by the controller (None: it can).
    Checked once before the first boot: no boot could fix it, and a login that cannot
    even try must never look like a guest that is not ready."""
    try:
        if not path.exists():
            return f"SSH key {path} does not exist"
        if path.is_dir():
            return f"SSH key {path} is a folder, not a key file"
        with path.open("rb") as f:
            f.read(1)
    except OSError as exc:
        return f"SSH key {path} cannot be read: {exc.strerror or exc}"
    try:
        paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        return f"SSH key {path} is protected by a passphrase (the harness logs in unattended)"
    except (paramiko.SSHException, ValueError, TypeError, UnicodeError, OSError) as exc:
        return f"SSH key {path} is not a private key paramiko can read ({exc})"
    return None


def known_hosts_problem(path: Path) -> str | None:
    """Why the known_hosts file at ``path`` cannot be used (None: it can, or it does not
    exist, which leaves every host key unknown)."""
    try:
        if not path.exists():
            return None
        if path.is_dir():
            return f"known_hosts {path} is a folder, not a file"
        paramiko.HostKeys().load(str(path))
    except OSError as exc:
        return f"known_hosts {path} cannot be read: {exc.strerror or exc}"
    except (paramiko.SSHException, ValueError, UnicodeError) as exc:
        return f"known_hosts {path} cannot be parsed: {exc}"
    return None


def open_session(host: str, port: int, cfg: SSHConfig, timeout: float,
                 jump: JumpHost | None = None) -> SSHChannel:
    """One login attempt (see the module doc for the error mapping); through ``jump``
    (an SSH jump host) when given."""
    sock = jump.channel_to(host, port, timeout) if jump is not None else None
    client = paramiko.SSHClient()
    if cfg.known_hosts is not None and cfg.known_hosts.exists():
        try:
            client.load_host_keys(str(cfg.known_hosts))
        except (OSError, paramiko.SSHException) as exc:
            raise InfraError(f"cannot read known_hosts {cfg.known_hosts}: {exc}",
                             reason="ssh_host_key", retryable=False) from exc
    policy = _HostKeyPolicy(cfg.known_hosts or Path("known_hosts"), cfg.host_key_alias,
                             cfg.accept_new_host_keys)
    client.set_missing_host_key_policy(policy)
    try:
        client.connect(
            host, port=port, username=cfg.user,
            key_filename=str(cfg.key) if cfg.key else None,
            look_for_keys=cfg.key is None, allow_agent=False,
            timeout=timeout, banner_timeout=timeout, auth_timeout=timeout, sock=sock,
        )
    except paramiko.AuthenticationException as exc:
        client.close()
        raise InfraError(f"SSH login as {cfg.user!r} refused by {host}:{port}: {exc}",
                         reason="ssh_auth") from exc
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise InfraError(f"SSH host key of {host}:{port} changed ({exc}); "
                         f"fix {cfg.known_hosts}", reason="ssh_host_key",
                         retryable=False) from exc
    except InfraError:
        client.close()
        raise
    except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
        # refused, timed out, reset, "Error reading SSH protocol banner", key exchange cut
        client.close()
        raise GuestNotReady(f"{host}:{port}: {exc or type(exc).__name__}") from exc
    return SSHChannel(client, policy.accepted)


class JumpHost:
    """An SSH jump host (``ssh -J``): guests on a host-only network are reached through
    their libvirt host. One logged-in transport, shared and reopened when it died.

    The host not answering is an ``InfraError`` (``host_unreachable``): the lab is at
    fault, not the guest; the guest's port refusing the forward is ``GuestNotReady``."""

    def __init__(self, host: str, cfg: SSHConfig) -> None:
        self.host = host
        self.cfg = cfg
        self._lock = threading.Lock()
        self._chan: SSHChannel | None = None

    def _transport(self, timeout: float) -> paramiko.Transport:
        with self._lock:
            t = self._chan.client.get_transport() if self._chan is not None else None
            if t is None or not t.is_active():
                if self._chan is not None:
                    self._chan.close()
                    self._chan = None
                try:
                    self._chan = open_session(self.host, self.cfg.port or 22, self.cfg,
                                              timeout)
                except GuestNotReady as exc:
                    raise InfraError(f"jump host {self.host} does not answer SSH: {exc}",
                                     reason="host_unreachable") from exc
                t = self._chan.client.get_transport()
                assert t is not None
            return t

    def channel_to(self, host: str, port: int, timeout: float) -> paramiko.Channel:
        t = self._transport(timeout)
        try:
            return t.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                  timeout=timeout)
        except paramiko.ChannelException as exc:  # refused or unreachable from the host
            raise GuestNotReady(f"{host}:{port} via {self.host}: {exc}") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise GuestNotReady(f"{host}:{port} via {self.host}: "
                                f"{exc or type(exc).__name__}") from exc

    def close(self) -> None:
        with self._lock:
            if self._chan is not None:
                self._chan.close()
                self._chan = None


class SSHConnector:
    """The ``Connector`` for real guests: logs in to ``domain.ssh_endpoint()``, directly
    or through the host as a jump host."""

    def __init__(self, cfg: SSHConfig, jump: JumpHost | None = None) -> None:
        self.cfg = cfg
        self.jump = jump

    def connect(self, domain: Domain, timeout: float) -> SSHChannel:
        host, port = domain.ssh_endpoint()
        return open_session(host, self.cfg.port or port, self.cfg, timeout, self.jump)


def run_on_host(host: str, cfg: SSHConfig, command: str, timeout: float) -> CommandResult:
    """One fixed command on a lab host (host dmesg); the caller handles errors."""
    chan = open_session(host, cfg.port or 22, cfg, timeout)
    try:
        return chan.run(command, timeout)
    finally:
        chan.close()


class HostSession:
    """One logged-in session to a lab host, reused for every host command (host dmesg,
    QEMU log, versions, the stall injector) and opened again when it died."""

    def __init__(self, host: str, cfg: SSHConfig) -> None:
        self.host = host
        self.cfg = cfg
        self._lock = threading.Lock()
        self._chan: SSHChannel | None = None

    def run(self, command: str, timeout: float) -> CommandResult:
        with self._lock:
            for attempt in (1, 2):
                if self._chan is None:
                    self._chan = open_session(self.host, self.cfg.port or 22, self.cfg,
                                              timeout)
                try:
                    return self._chan.run(command, timeout)
                except CommandTimeout:
                    raise
                except CollectError:
                    self._chan.close()
                    self._chan = None
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._chan is not None:
                self._chan.close()
                self._chan = None


def lab_connector_factory(lab: object) -> Callable[[str, str], SSHConnector]:
    """``connector_for(host_name, guest_name)`` for a ``harness.inventory.Lab``."""
    from harness.inventory import Lab

    assert isinstance(lab, Lab)
    jumps: dict[str, JumpHost] = {}
    lock = threading.Lock()

    def jump_for(host_name: str) -> JumpHost | None:
        from urllib.parse import urlparse

        host = lab.host(host_name)
        if host.ssh is None or not host.ssh.jump_to_guests:
            return None
        address = host.ssh.host or urlparse(host.uri).hostname or ""
        with lock:  # one transport per host address, shared by its slots
            if address not in jumps:
                jumps[address] = JumpHost(address, SSHConfig(
                    user=host.ssh.user, key=host.ssh.key, known_hosts=lab.known_hosts,
                    port=host.ssh.port))
            return jumps[address]

    def connector_for(host_name: str, guest_name: str) -> SSHConnector:
        guest = lab.guest(guest_name)
        return SSHConnector(SSHConfig(
            user=guest.ssh.user, key=guest.ssh.key, known_hosts=lab.known_hosts,
            accept_new_host_keys=lab.spec.ssh.accept_new_host_keys,
            host_key_alias=guest_name,
        ), jump_for(host_name))

    return connector_for
