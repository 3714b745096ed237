"""``harness run`` refuses what it cannot do right, before it boots anything: unusable SSH
key or known_hosts files (located in the lab file), run ids that would not name a folder
of their own, and a resume whose matrix or lab changed. Each is exit status 2, one clear
message, no traceback; run as a user runs it (a real process)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SIM_LAB = """\
name: routes
hosts:
  n1: {{uri: "sim:///", slots: 2, attributes: {{numa_patch: false}}}}
guests:
  es10: {{kernel_release: 4.18.0-147.5.1.el8_1.5es.10.aarch64}}
  es11: {{kernel_release: 4.18.0-147.5.1.el8_1.5es.11.aarch64}}
sim:
  seed: {seed}
  rules:
    - match: {{guest: es11}}
      vcpu_offline: 0.3
"""

SIM_MATRIX = """\
name: routes
lab: lab.yaml
axes:
  host: [n1]
  guest: [{guests}]
  vcpus: [4]
boots: {boots}
timeouts: {{boot: {boot_timeout}}}
"""


def run(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "run", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "160"})


def sim(tmp: Path, *, seed: int = 5, guests: str = "es10, es11", boots: int = 4,
        boot_timeout: int = 300) -> Path:
    (tmp / "lab.yaml").write_text(SIM_LAB.format(seed=seed))
    m = tmp / "matrix.yaml"
    m.write_text(SIM_MATRIX.format(guests=guests, boots=boots, boot_timeout=boot_timeout))
    return m


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("run_id, says", [
    ("..", "parent"), (".", "parent"), ("a/b", "may only use"), ("x" * 200, "at most 128"),
    ("", "empty")])
def test_run_ids_that_would_not_name_a_folder_of_their_own(tmp_path: Path, run_id: str,
                                                           says: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    matrix = sim(project)
    before = files(tmp_path)
    p = run(project, matrix, "--run-id", run_id, "--reports-dir", "reports")
    assert p.returncode == 2, p.stderr
    assert says in p.stderr and "Traceback" not in p.stderr
    assert {f for f in files(tmp_path) - before if not f.startswith("project/reports")} == set()
    assert not any(project.glob("reports/*/")), "no run folder"


def test_resume_refuses_a_changed_plan_or_lab_and_accepts_the_rest(tmp_path: Path) -> None:
    matrix = sim(tmp_path)
    first = run(tmp_path, matrix, "--run-id", "r1")
    assert first.returncode in (0, 1), first.stderr
    db = tmp_path / "reports" / "routes.db"

    def boots() -> int:
        with sqlite3.connect(db) as c:
            return int(c.execute("SELECT COUNT(*) FROM boots").fetchone()[0])

    assert boots() == 8
    refused = {
        "boots": (dict(boots=6), "cell n1/es10/vcpu4: boots 4 -> 6"),
        "cells": (dict(guests="es10"), "cells no longer in the matrix: n1/es11/vcpu4"),
        "seed": (dict(seed=6), "the simulated lab's model: seed 5 -> 6"),
    }
    for what, (change, says) in refused.items():
        sim(tmp_path, **change)  # type: ignore[arg-type]
        p = run(tmp_path, matrix, "--resume", "r1")
        assert p.returncode == 2, (what, p.stderr)
        assert "cannot resume run 'r1'" in p.stderr and says in p.stderr, (what, p.stderr)
        assert "Traceback" not in p.stderr
        assert boots() == 8
    sim(tmp_path, boot_timeout=120)  # a timeout changes how boots go on, not what they mean
    p = run(tmp_path, matrix, "--resume", "r1")
    assert p.returncode in (0, 1), p.stderr
    assert boots() == 8


KEY_LAB = """\
name: keys
hosts:
  t: {{uri: "test:///default", network: {{type: user}}}}
guests:
  g:
    boot: {{kernel: vmlinuz}}
    ssh:
      user: root
      key: {key}
"""

KEY_MATRIX = """\
name: keys
lab: lab.yaml
axes: {host: [t], guest: [g], vcpus: [2]}
boots: 1
"""


@pytest.mark.parametrize("case", ["missing", "directory", "garbage"])
def test_unusable_guest_key_is_a_located_error_before_any_boot(tmp_path: Path,
                                                               case: str) -> None:
    key = tmp_path / "guest_key"
    if case == "directory":
        key.mkdir()
    elif case == "garbage":
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key at all\n")
    (tmp_path / "lab.yaml").write_text(KEY_LAB.format(key=key))
    (tmp_path / "matrix.yaml").write_text(KEY_MATRIX)
    p = run(tmp_path, "matrix.yaml", "--run-id", "k1")
    assert p.returncode == 2, p.stderr
    line = next(i for i, t in enumerate(KEY_LAB.splitlines(), 1) if "key:" in t)
    assert f"lab.yaml:{line}:" in p.stderr and "SSH key" in p.stderr, p.stderr
    assert {"missing": "does not exist", "directory": "is a folder",
            "garbage": "not a private key"}[case] in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "reports").exists()  # nothing recorded, nothing booted


def test_unreadable_known_hosts_is_a_located_error(tmp_path: Path) -> None:
    key = tmp_path / "guest_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True)
    (tmp_path / "known").mkdir()
    lab = KEY_LAB.format(key=key) + "ssh: {known_hosts: known}\n"
    (tmp_path / "lab.yaml").write_text(lab)
    (tmp_path / "matrix.yaml").write_text(KEY_MATRIX)
    p = run(tmp_path, "matrix.yaml", "--run-id", "k1")
    assert p.returncode == 2, p.stderr
    line = len(lab.splitlines())
    assert f"lab.yaml:{line}:" in p.stderr and "is a folder" in p.stderr, p.stderr
    assert not (tmp_path / "reports").exists()
