"""The pytest plugin, run for real with pytester: one test per cell, -k selection,
pytest-xdist with host groups, one run in the store, reports written once."""

from __future__ import annotations

import json
import sqlite3
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def _real_cache() -> Path:
    from harness.lab.paths import layout

    return layout().root  # read before pytester moves HOME


REAL_CACHE = _real_cache()

LAB = """\
name: plug-lab
hosts:
  h-bad:
    uri: sim:///
    slots: 2
    attributes: {numa_patch: false}
  h-good:
    uri: sim:///
    slots: 2
    attributes: {numa_patch: true}
guests:
  g-ok: {kernel_release: 4.18.0-147.5.1.el8_1.5es.10.aarch64}
  g-bad: {kernel_release: 4.18.0-147.5.1.el8_1.5es.11.aarch64}
  g-flaky: {kernel_release: 4.18.0-147.5.1.el8_1.5es.14.aarch64}
sim:
  seed: 5
  rules:
    - match: {host: h-bad, guest: g-bad}
      vcpu_offline: 1.0
    - match: {guest: g-flaky}
      vcpu_offline: 0.5
  boot_seconds: {mean: 30, sd: 5}
"""

MATRIX = """\
name: plug
lab: lab.yaml
axes:
  host: [h-bad, h-good]
  guest: [g-ok, g-bad, g-flaky]
  vcpus: [4, 8]
boots: 12
expect: {vcpu_offline: 0.0, boot_failure: 0.0}
overrides:
  - match: {guest: g-flaky}
    expect: {vcpu_offline: 0.5}
"""

FAILING = {f"h-bad/g-bad/vcpu{n}" for n in (4, 8)}
UNDECIDED = {f"{h}/g-flaky/vcpu{n}" for h in ("h-bad", "h-good") for n in (4, 8)}
ALL = {f"{h}/{g}/vcpu{n}" for h in ("h-bad", "h-good") for g in ("g-ok", "g-bad", "g-flaky")
       for n in (4, 8)}


@pytest.fixture
def matrix(pytester: pytest.Pytester) -> Path:
    (pytester.path / "lab.yaml").write_text(textwrap.dedent(LAB))
    path = pytester.path / "m.yaml"
    path.write_text(textwrap.dedent(MATRIX))
    return path


def outcomes(junit: Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "").split("@")[0]
        kind = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = child.tag
        out[name] = kind
    return out


def runs_in(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as c:
        return list(c.execute("SELECT id, status FROM runs"))


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "xdist-2"])
def test_one_test_per_cell_right_verdicts(pytester: pytest.Pytester, matrix: Path,
                                          workers: int | None) -> None:
    args = ["--matrix", str(matrix), "--matrix-reports-dir", "out", "-p", "no:cacheprovider",
            "--junitxml", "junit.xml", "-rA"]
    if workers:
        args += ["-n", str(workers)]
    result = pytester.runpytest_subprocess(*args)
    assert result.parseoutcomes() == {"passed": len(ALL - FAILING - UNDECIDED),
                                      "failed": len(FAILING), "undecided": len(UNDECIDED)}
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    got = outcomes(pytester.path / "junit.xml")
    assert set(got) == ALL
    assert {k for k, v in got.items() if v == "failure"} == FAILING
    assert {k for k, v in got.items() if v == "skipped"} == UNDECIDED
    # the statistical statement and the signatures are in the failure message
    result.stdout.re_match_lines([r".*h-bad/g-bad/vcpu4: vCPU offline 12/12 = 100% "
                                  r"\[\d+%, 100%\], expected <= 0%"])
    result.stdout.fnmatch_lines(["*signatures:*vCPU failed to come online x12*"])
    # one run in the store, every boot recorded once, reports written once, by one process
    db = pytester.path / "out" / "plug-lab.db"
    (run_id, status), = runs_in(db)
    assert status == "finished"
    with sqlite3.connect(db) as c:
        n, distinct = c.execute("SELECT COUNT(*), COUNT(DISTINCT cell_id || '#' || idx) "
                                "FROM boots WHERE run_id = ?", (run_id,)).fetchone()
    assert n == distinct == 12 * len(ALL)
    report = json.loads((pytester.path / "out" / run_id / "report.json").read_text())
    assert {c["id"] for c in report["cells"]} == ALL
    verdicts = {c["id"]: c["verdict"] for c in report["cells"]}
    assert {k for k, v in verdicts.items() if v == "fail"} == FAILING
    # maximum 0 and no failure seen: "clean" (counted as passed), never "pass"
    assert {k for k, v in verdicts.items() if v == "clean"} == ALL - FAILING - UNDECIDED
    assert "CLEAN" in result.stdout.str()
    assert sorted(p.name for p in (pytester.path / "out" / run_id).glob("report.*")) == [
        "report.html", "report.json"]


def test_k_selects_cells_and_junit_carries_properties(pytester: pytest.Pytester,
                                                      matrix: Path) -> None:
    result = pytester.runpytest_subprocess("--matrix", str(matrix), "-k", "h-good and g-ok",
                                           "--matrix-reports-dir", "out", "--junitxml", "j.xml",
                                           "--matrix-boots", "3", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    props = {}
    for case in ET.parse(pytester.path / "j.xml").getroot().iter("testcase"):
        props[case.get("name")] = {p.get("name"): p.get("value")
                                   for p in case.iter("property")}
    assert set(props) == {"h-good/g-ok/vcpu4", "h-good/g-ok/vcpu8"}
    p = props["h-good/g-ok/vcpu8"]
    # maximum 0, no failure in 3 boots, no rate to rule out: "clean", a success, not "pass"
    assert p["boots"] == "3" and p["ok"] == "3" and p["verdict"] == "clean"
    assert result.ret == pytest.ExitCode.OK
    assert p["vcpus"] == "8" and p["host"] == "h-good"


def test_run_id_continues_a_run(pytester: pytest.Pytester, matrix: Path) -> None:
    base = ["--matrix", str(matrix), "-k", "g-ok", "--matrix-reports-dir", "out",
            "--matrix-run-id", "night-1", "-p", "no:cacheprovider", "--matrix-reports", ""]
    pytester.runpytest_subprocess(*base, "--matrix-boots", "2").assert_outcomes(passed=4)
    pytester.runpytest_subprocess(*base, "--matrix-boots", "5").assert_outcomes(passed=4)
    db = pytester.path / "out" / "plug-lab.db"
    assert [r[0] for r in runs_in(db)] == ["night-1"]
    with sqlite3.connect(db) as c:
        (n,) = c.execute("SELECT COUNT(*) FROM boots WHERE run_id = 'night-1'").fetchone()
    assert n == 4 * 5  # topped up from 2 to 5 boots per cell, none counted twice


def test_bad_matrix_is_a_usage_error(pytester: pytest.Pytester, matrix: Path) -> None:
    matrix.write_text(matrix.read_text().replace("boots: 12", "bots: 12"))
    result = pytester.runpytest_subprocess("--matrix", str(matrix), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*m.yaml:7:1: unknown key 'bots' (did you mean 'boots'?)*"])


def test_fixtures_boot_a_cell_from_a_users_test(pytester: pytest.Pytester,
                                                matrix: Path) -> None:
    pytester.makepyfile(test_mine="""
        from harness.model import Outcome

        def test_bad_cell_loses_a_vcpu(boot_result, harness_lab):
            results = boot_result("h-bad/g-bad/vcpu8", boots=2)
            assert [r.index for r in results] == [0, 1]
            assert all(r.outcome == Outcome.VCPU_OFFLINE for r in results)
            assert all(r.offline_cpus for r in results)
            assert harness_lab.host("h-bad").attributes["numa_patch"] is False
            again = boot_result("h-bad/g-bad/vcpu8", boots=1)
            assert [r.index for r in again] == [2]
    """)
    result = pytester.runpytest_subprocess("--matrix", str(matrix), "test_mine.py",
                                           "-k", "test_bad_cell or h-good/g-ok/vcpu4",
                                           "--matrix-reports-dir", "out",
                                           "--matrix-boots", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


REAL_LAB = """\
name: plug-local
hosts:
  clean:
    uri: qemu:///embed?root={root}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
  stall:
    uri: qemu:///embed?root={root}/libvirt
    domain_type: qemu
    cpu_model: cortex-a72
    network: {{type: user}}
    storage_dir: {root}/run
    fault:
      stall: {{probability: 1.0, seconds: 600}}
guests:
  arm64:
    boot:
      kernel: ${{cache}}/guests/arm64/vmlinuz
      initrd: ${{cache}}/guests/arm64/initrd-ssh.cpio
      cmdline: console=ttyAMA0
    ssh: {{key: "${{cache}}/keys/id_ed25519"}}
ssh: {{accept_new_host_keys: true}}
"""

REAL_MATRIX = """\
name: plug-real
lab: lab.yaml
axes:
  host: [clean, stall]
  guest: [arm64]
  vcpus: [2]
boots: 1
memory_mib: 512
timeouts: {boot: 180, ssh: 5, command: 30, shutdown: 5}
"""


@pytest.mark.integration
@pytest.mark.xdist_group("local-lab")
def test_short_real_run_over_the_local_lab(pytester: pytest.Pytester,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Real guests under QEMU through libvirt, SSH and the classifier, as pytest tests:
    the clean host's cell passes, the stalling host's cell fails as vCPU offline."""
    import os

    from harness.lab import doctor
    from harness.lab.embed import write_qemu_conf
    from harness.lab.paths import layout
    from harness.lab.setup import setup

    why = doctor.cannot_boot()
    if why is not None:
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("the stall injector freezes a QEMU thread in a cgroup: needs root")
    # pytester moved HOME: keep the real lab cache, and a short embed root (QEMU's
    # monitor socket path must fit in 108 bytes)
    monkeypatch.setenv("VMBH_CACHE", str(REAL_CACHE))
    setup(layout(), install=True)
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="vmbh8-", dir="/tmp"))
    try:
        write_qemu_conf(root / "libvirt")
        (pytester.path / "lab.yaml").write_text(REAL_LAB.format(root=root))
        (pytester.path / "m.yaml").write_text(REAL_MATRIX)
        result = pytester.runpytest_subprocess("--matrix", "m.yaml", "--matrix-reports-dir",
                                               "out", "--junitxml", "j.xml",
                                               "-p", "no:cacheprovider", timeout=900)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([r".*stall/arm64/vcpu2: vCPU offline 1/1 = 100% .*"])
    result.stdout.fnmatch_lines(["*vCPU failed to come online*"])
    assert outcomes(pytester.path / "j.xml") == {"clean/arm64/vcpu2": "passed",
                                                 "stall/arm64/vcpu2": "failure"}
