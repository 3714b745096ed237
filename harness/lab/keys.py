"""Key pairs made for this lab only (never committed): the controller's login key
(OpenSSH format, read by paramiko and ssh) and the guest's dropbear host key.

Dropbear's own key format is written directly, so no arm64 ``dropbearkey`` has to run
on this machine: for ed25519 it is ``string "ssh-ed25519" || string (priv32 || pub32)``
(dropbear ``signkey_ed25519.c``, ``buf_put_ed25519_priv_key``).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_TYPE = b"ssh-ed25519"


def _sshstring(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def dropbear_ed25519(key: Ed25519PrivateKey) -> bytes:
    """The private key in dropbear's format (what ``dropbear -r FILE`` reads)."""
    priv = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _sshstring(KEY_TYPE) + _sshstring(priv + pub)


def openssh_public(key: Ed25519PrivateKey, comment: str = "") -> str:
    line = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{line} {comment}".rstrip()


@dataclass(frozen=True)
class LabKeys:
    client_key: Path  # private, OpenSSH format, mode 0600
    client_pub: str  # "ssh-ed25519 AAAA... comment" for authorized_keys
    host_key_dropbear: Path  # the guest's host key, dropbear format
    host_pub: str  # "ssh-ed25519 AAAA..." for known_hosts


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def ensure_keys(keydir: Path) -> LabKeys:
    """Create the lab's keys under ``keydir`` once; later calls reuse them."""
    client = keydir / "id_ed25519"
    host = keydir / "guest_host_ed25519.dropbear"
    host_pem = keydir / "guest_host_ed25519"
    if not client.exists():
        k = Ed25519PrivateKey.generate()
        _write_private(client, k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()))
    if not (host.exists() and host_pem.exists()):
        k = Ed25519PrivateKey.generate()
        _write_private(host_pem, k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()))
        _write_private(host, dropbear_ed25519(k))
    ck = _load(client)
    hk = _load(host_pem)
    client_pub = openssh_public(ck, "vm-boot-harness-lab")
    (keydir / "id_ed25519.pub").write_text(client_pub + "\n", encoding="utf-8")
    return LabKeys(client, client_pub, host, openssh_public(hk))


def _load(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an ed25519 key")
    return key
