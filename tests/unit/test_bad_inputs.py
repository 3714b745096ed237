"""The bad-input corpus (tests/data/bad-inputs/): every broken lab and matrix file gives
exit status 2, ``file:line:column: message`` at the place its header names, no traceback,
through ``harness plan`` and ``harness run`` alike, and nothing is written."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad-inputs"
HEADER = re.compile(rb"# bad-input: category=(\w+) exit=(\d+) at=(\d+:\d+) message=(.*)\n")
CASES = sorted(p for p in CORPUS.glob("*/*.yaml") if not p.name.startswith("_"))


def _header(path: Path) -> tuple[str, int, str, str]:
    m = HEADER.match(path.read_bytes())
    assert m is not None, f"{path}: no '# bad-input:' header"
    return (m.group(1).decode(), int(m.group(2)), m.group(3).decode(),
            m.group(4).decode("utf-8"))


def harness(argv: list[str]) -> tuple[int, str]:
    """``harness ARGV`` in this process: (exit status, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue() + out.getvalue()


def _target(case: Path, tmp: Path) -> Path:
    """The matrix to give the harness: the case itself, or one naming the lab case."""
    if case.parent.name != "lab":
        return case
    m = tmp / "matrix.yaml"
    m.write_text(f"name: lab-case\nlab: {json.dumps(str(case))}\n"
                 "axes: {host: all, guest: all, vcpus: [2]}\nboots: 1\n")
    return m


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "reports").exists(), "a reports folder was created"
    dbs = [p for p in tmp.rglob("*.db")] + [p for p in CORPUS.rglob("*.db*")]
    assert not dbs, f"a database was written: {dbs}"


def test_the_corpus_is_large_and_covers_every_category() -> None:
    cats = Counter(_header(p)[0] for p in CASES)
    assert len(CASES) >= 100, cats
    assert set(cats) == {"yaml", "types", "names", "structure", "sim", "paths"}, cats


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_broken_file_is_refused_with_its_location(case: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _, status, at, fragment = _header(case)
    monkeypatch.chdir(tmp_path)  # a default ./reports would land here
    target = _target(case, tmp_path)
    for argv in (["plan", str(target)],
                 ["run", str(target), "--reports-dir", str(tmp_path / "reports"), "-q"]):
        code, output = harness(argv)
        assert "Traceback" not in output, output
        assert code == status, f"{argv[0]}: exit {code}\n{output}"
        assert output.startswith(f"{case}:{at}: "), f"{argv[0]}: {output[:500]}"
        assert fragment in output, f"{argv[0]}: {output[:500]}"
        _nothing_written(tmp_path)


def test_a_file_over_the_byte_budget_is_refused(tmp_path: Path) -> None:
    from harness.yamlsrc import MAX_FILE_BYTES

    big = tmp_path / "big.yaml"
    line = "# " + "x" * 97 + "\n"
    big.write_text("name: big\n" + line * (MAX_FILE_BYTES // len(line) + 1))
    code, output = harness(["plan", str(big)])
    assert code == 2 and output.startswith(f"{big}:") and "larger than" in output, output
    code, output = harness(["plan", str(tmp_path)])  # a folder
    assert code == 2 and "Traceback" not in output, output


@pytest.mark.parametrize("name", ["yaml-alias-bomb", "yaml-not-utf8-latin1"])
def test_the_installed_command_refuses_them_too(name: str, tmp_path: Path) -> None:
    """A few cases through the real console script (a fresh interpreter, real exit)."""
    case = CORPUS / "matrix" / f"{name}.yaml"
    _, status, at, fragment = _header(case)
    exe = Path(sys.executable).with_name("harness")
    for argv in (["plan", str(case)], ["run", str(case), "--reports-dir",
                                       str(tmp_path / "reports"), "-q"]):
        p = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
        assert p.returncode == status, p.stderr
        assert p.stderr.startswith(f"{case}:{at}: ") and fragment in p.stderr, p.stderr
        assert "Traceback" not in p.stderr + p.stdout
    _nothing_written(tmp_path)


def test_resuming_a_run_of_no_database_writes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = harness(["run", str(CORPUS / "matrix" / "_ok.yaml"), "--resume", "nope",
                            "--reports-dir", str(tmp_path / "reports"), "-q"])
    assert code == 2 and "no results database" in output and "Traceback" not in output, output
    _nothing_written(tmp_path)
