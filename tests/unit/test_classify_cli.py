"""``harness classify``: human and JSON output, stdin, several files, user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli

DATA = Path(__file__).resolve().parent.parent / "data"
FT2500 = DATA / "dmesg-real/ft2500-kvm-guest-el8-4.18-vcpu-offline-fragment.log"
CLEAN = DATA / "dmesg-real/kernelci-mt8183-juniper-6.6.33-clean.log"
TOP_KEYS = ["file", "boots", "cpus_brought_up", "offline_cpus", "psci_errors", "panic",
            "signatures", "verdict", "boots_total", "boots_omitted", "psci_errors_omitted",
            "cpu_ids_ignored"]


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["classify", *args], input=stdin)
    return r.exit_code, r.stdout, r.stderr


def test_human_summary() -> None:
    code, out, _ = _run(str(FT2500))
    assert code == 0
    assert out.splitlines()[0] == f"{FT2500}: vcpu_offline"
    assert "offline CPUs: 3-4" in out
    assert "PSCI CPU_ON errors: CPU3 (-22), CPU4 (-22)" in out
    assert "2 x vCPU failed to come online" in out


def test_json_shape_of_one_file() -> None:
    code, out, _ = _run(str(FT2500), "--json")
    assert code == 0
    d = json.loads(out)
    assert list(d) == TOP_KEYS
    assert d["offline_cpus"] == [3, 4] and d["verdict"] == "vcpu_offline"
    assert d["psci_errors"] == [{"cpu": 3, "errno": -22}, {"cpu": 4, "errno": -22}]
    assert d["panic"] is None and d["cpus_brought_up"] is None
    assert {"kind": "cpu_failed_online", "title": "vCPU failed to come online", "count": 2} in \
        d["signatures"]
    boot = d["boots"][0]
    for key in TOP_KEYS[2:8]:
        assert key in boot
    assert boot["findings"][0] == {"kind": "cpu_failed_online", "cpu": 3, "errno": None,
                                   "line": 3, "text": "CPU3: failed to come online"}


def test_json_list_for_several_files_and_cross_checks() -> None:
    code, out, _ = _run(str(FT2500), str(CLEAN), "--json", "--expected-cpus", "8",
                        "--online", "0-2,4-7")
    assert code == 0
    objs = json.loads(out)
    assert [o["file"] for o in objs] == [str(FT2500), str(CLEAN)]
    assert objs[0]["offline_cpus"] == [3]  # sysfs is the authority: CPU4 came back later
    assert objs[1]["offline_cpus"] == [3] and objs[1]["verdict"] == "vcpu_offline"


def test_stdin() -> None:
    code, out, _ = _run("-", "--json", stdin="[ 8.1] CPU3: failed to come online\r\n")
    assert code == 0
    d = json.loads(out)
    assert d["file"] == "-" and d["offline_cpus"] == [3]


@pytest.mark.parametrize(("args", "words"), [
    (["--online", "0-x", "-"], "'0-x' in CPU list"),
    (["--expected-cpus", "0", "-"], "--expected-cpus"),
    (["/nonexistent/console.log"], "/nonexistent/console.log does not exist"),
    ([str(DATA)], "is a directory"),
    ([], "Missing argument"),
])
def test_user_errors_exit_2_with_a_clear_message(args: list[str], words: str) -> None:
    code, out, err = _run(*args, stdin="")
    assert code == 2
    assert words in err and "Traceback" not in err + out


def test_real_entry_point_reads_stdin_bytes() -> None:
    r = subprocess.run([sys.executable, "-m", "harness", "classify", "-"],
                       input=b"\xff\xfe garbage\n[ 1.0] CPU2: failed to come online\n",
                       capture_output=True, check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert b"-: vcpu_offline" in r.stdout and b"offline CPUs: 2" in r.stdout
    r = subprocess.run([sys.executable, "-m", "harness", "classify", "missing.log"],
                       capture_output=True, check=False, timeout=60)
    assert r.returncode == 2 and b"missing.log does not exist" in r.stderr
    assert b"Traceback" not in r.stderr


def test_a_log_without_newlines_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    from harness.cli import classify as mod

    log = tmp_path / "one-line.log"
    log.write_bytes(b"x" * (mod.READ_LIMIT * 3) + b"\n[ 1.0] CPU6: failed to come online\n")
    with log.open("rb") as f:
        pieces = list(mod._lines(f))
    assert max(len(p) for p in pieces) <= mod.READ_LIMIT
    code, out, _ = _run(str(log), "--json")
    assert code == 0 and json.loads(out)["offline_cpus"] == [6]
