from __future__ import annotations

from pathlib import Path

import pytest

from harness.inventory import load_lab
from harness.lab import embed, paths


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMBH_CACHE", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c"
    assert paths.expand("qemu:///embed?root=${cache}/libvirt") == \
        f"qemu:///embed?root={tmp_path}/c/libvirt"
    monkeypatch.delenv("VMBH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert paths.cache_dir() == tmp_path / "x" / "vm-boot-harness"
    assert paths.expand("/no/placeholder") == "/no/placeholder"


def test_the_repository_lab_file_points_into_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("VMBH_CACHE", str(tmp_path))
    root = Path(__file__).resolve().parents[2]
    lab = load_lab(root / "matrices/labs/local-lab.yaml")
    assert lab.host("local-clean").uri == f"qemu:///embed?root={tmp_path}/libvirt"
    boot = lab.guest("deb12-cloud").boot
    assert boot is not None and boot.kernel == tmp_path / "guests/cloud-arm64/vmlinuz"
    assert lab.guest("deb12-nossh").boot.initrd.name == "initrd-nossh.cpio"  # type: ignore[union-attr]
    assert lab.guest("deb12-arm64").ssh.key == tmp_path / "keys/id_ed25519"
    stall = lab.host("local-stall").fault
    assert stall is not None and stall.stall is not None and stall.stall.probability == 0.5


def test_qemu_conf_for_embed(tmp_path: Path) -> None:
    assert 'user = "root"' in embed.qemu_conf(True)
    assert "user" not in embed.qemu_conf(False)
    assert 'stdio_handler = "file"' in embed.qemu_conf(False)
    assert embed.write_qemu_conf(tmp_path, as_root=False) is True
    assert embed.write_qemu_conf(tmp_path, as_root=False) is False
    assert (tmp_path / "etc/qemu.conf").read_text() == embed.qemu_conf(False)
    assert embed.root_problem(tmp_path / ("x" * 80)) is not None
    assert embed.root_problem(Path("/var/tmp/vmbh/libvirt")) is None


def test_holder_names_the_process_that_locks_the_embed_root(tmp_path: Path) -> None:
    import subprocess
    import sys

    assert embed.holder(tmp_path) is None  # no pid file
    pidfile = tmp_path / "run/qemu/driver.pid"
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text("")
    assert embed.holder(tmp_path) is None  # nobody holds it
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); "
            "fcntl.lockf(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); "
            "print('locked', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code, str(pidfile)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        assert embed.holder(tmp_path) == child.pid
    finally:
        child.kill()
        child.wait()
    assert embed.holder(tmp_path) is None
