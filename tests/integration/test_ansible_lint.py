"""ansible/ passes ansible-lint at the production profile; every playbook passes
--syntax-check; the image build script refuses bad input and leaves no half image."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
PLAYBOOKS = sorted(p.name for p in ANSIBLE_DIR.glob("*.yml"))
# ansible from the environment running the tests (.venv in CI): the plugin imports harness
BIN_DIR = Path(sys.executable).parent
BUILD_IMAGE = ANSIBLE_DIR / "roles" / "guest_images" / "files" / "harness-build-image"


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), NO_COLOR="1")
    env.pop("HARNESS_LAB", None)
    return env


def _need(tool: str) -> str:
    path = BIN_DIR / tool if (BIN_DIR / tool).exists() else shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (pip install -e '.[ansible]')")
    return str(path)


def test_playbooks_are_the_expected_ones() -> None:
    assert PLAYBOOKS == ["nightly.yml", "site.yml"]


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(playbook: str, tmp_path: Path) -> None:
    res = subprocess.run([_need("ansible-playbook"), "--syntax-check", playbook], cwd=ANSIBLE_DIR,
                         env=_env(tmp_path), text=True, capture_output=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean(tmp_path: Path) -> None:
    res = subprocess.run(
        [_need("ansible-lint"), "--profile", "production", "--nocolor", "ansible/"],
        cwd=REPO, env=_env(tmp_path), text=True, capture_output=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in res.stderr


def test_build_image_script_refuses_missing_inputs(tmp_path: Path) -> None:
    res = subprocess.run(
        [str(BUILD_IMAGE), "--base", str(tmp_path / "nope.qcow2"), "--out",
         str(tmp_path / "out.qcow2"), "--hostname", "h", "--pubkey", str(tmp_path / "k.pub"),
         "--rpms", str(tmp_path)], text=True, capture_output=True,
    )
    assert res.returncode == 1 and "nope.qcow2: not found" in res.stderr
    res = subprocess.run([str(BUILD_IMAGE), "--out", "x"], text=True, capture_output=True)
    assert res.returncode == 2 and res.stderr.startswith("usage:")


def test_build_image_script_leaves_no_half_image_when_virt_customize_fails(
    tmp_path: Path,
) -> None:
    """Real qemu-img; virt-customize replaced by /bin/false (an aarch64 guest cannot be
    customized on this machine): the failure must leave neither image nor stamp."""
    _need("qemu-img")
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    rpms = tmp_path / "rpms"
    rpms.mkdir()
    (rpms / "kernel-core-1.0.aarch64.rpm").write_bytes(b"rpm")
    pub = tmp_path / "k.pub"
    pub.write_text("ssh-ed25519 AAAA test\n")
    out = tmp_path / "img" / "es10.qcow2"
    out.parent.mkdir()
    res = subprocess.run(
        [str(BUILD_IMAGE), "--virt-customize", "/bin/false", "--base", str(base), "--out",
         str(out), "--hostname", "harness-es10", "--pubkey", str(pub), "--rpms", str(rpms),
         "--kernel-release", "1.0.aarch64", "--cmdline-arg=console=ttyAMA0"],
        text=True, capture_output=True,
    )
    assert res.returncode != 0
    assert sorted(p.name for p in out.parent.iterdir()) == []
