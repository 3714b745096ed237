from __future__ import annotations

import struct
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization

from harness.lab.keys import ensure_keys


def _strings(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4: pos + 4 + n])
        pos += 4 + n
    return out


def test_keys_are_made_once_with_private_modes(tmp_path: Path) -> None:
    k1 = ensure_keys(tmp_path / "keys")
    k2 = ensure_keys(tmp_path / "keys")
    assert k1 == k2
    assert k1.client_key.stat().st_mode & 0o777 == 0o600
    assert k1.host_key_dropbear.stat().st_mode & 0o777 == 0o600
    assert k1.client_pub.startswith("ssh-ed25519 ") and k1.client_pub != k1.host_pub


def test_client_key_loads_in_paramiko(tmp_path: Path) -> None:
    k = ensure_keys(tmp_path)
    key = paramiko.Ed25519Key.from_private_key_file(str(k.client_key))
    assert k.client_pub.split()[1] == key.get_base64()


def test_dropbear_host_key_layout_matches_the_public_key(tmp_path: Path) -> None:
    k = ensure_keys(tmp_path)
    kind, blob = _strings(k.host_key_dropbear.read_bytes())
    assert kind == b"ssh-ed25519" and len(blob) == 64
    pub = serialization.load_ssh_public_key(k.host_pub.encode())
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert blob[32:] == raw
