"""The newc writer, checked against the real ``cpio`` tool when present and by parsing."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from harness.lab.cpio import Entry, archive


def _parse(data: bytes) -> list[tuple[str, int, bytes]]:
    out, pos = [], 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos: pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out.append((name, mode, body))


def _sample() -> list[Entry]:
    return [Entry.dir("bin"), Entry.file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
            Entry.symlink("bin/sh", "tool"), Entry.dir("dev"), Entry.chardev("dev/console", 5, 1),
            Entry.file("odd", b"x" * 5)]


def test_round_trip_keeps_names_modes_and_bodies() -> None:
    got = _parse(archive(_sample()))
    assert [n for n, _, _ in got] == ["bin", "bin/tool", "bin/sh", "dev", "dev/console", "odd"]
    by = {n: (m, b) for n, m, b in got}
    assert stat.S_ISDIR(by["bin"][0])
    assert by["bin/tool"] == (stat.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n")
    assert by["bin/sh"] == (stat.S_IFLNK | 0o777, b"tool")
    assert stat.S_ISCHR(by["dev/console"][0]) and by["dev/console"][1] == b""
    assert by["odd"][1] == b"xxxxx"


def test_same_input_same_bytes_and_alignment() -> None:
    a, b = archive(_sample()), archive(_sample())
    assert a == b and len(a) % 4 == 0


def test_duplicate_and_empty_paths_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        archive([Entry.dir("a"), Entry.dir("a/")])
    with pytest.raises(ValueError, match="empty"):
        archive([Entry.dir("/")])


@pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")
def test_gnu_cpio_extracts_it(tmp_path: Path) -> None:
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"],
                   input=archive([e for e in _sample() if e.path != "dev/console"]),
                   cwd=tmp_path, check=True, capture_output=True)
    assert (tmp_path / "bin/tool").read_text() == "#!/bin/sh\necho hi\n"
    assert (tmp_path / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "bin/sh").readlink() == Path("tool")
