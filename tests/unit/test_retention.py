"""`harness prune`: failing boots' evidence outlives passing boots'; the database keeps
every boot, so counts, history and reports stay whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.report import write_reports
from harness.report.sample import record_sample_run
from harness.retention import Policy, disk_usage, plan, prune
from harness.store import RunInfo, Store

DAY = 86400.0


def _nights(tmp_path: Path, n: int = 4) -> tuple[Path, list[str]]:
    db = tmp_path / "lab.db"
    ids = []
    with Store(db) as store:
        for i in range(n):
            rid = f"night-{i}"
            record_sample_run(store, rid, tmp_path / rid, hosts=2, guests=("es10", "es11"),
                              vcpus=(4, 8), boots=8, seed=i, started=1_795_000_000 + i * DAY)
            ids.append(rid)
    return db, ids


def test_plan_is_per_matrix_newest_first_and_skips_running_runs():
    def run(i: str, matrix: str, t: float, status: str = "finished") -> RunInfo:
        return RunInfo(i, matrix, "", {}, t, t + 1, status)

    runs = [run("a1", "a", 1), run("a2", "a", 2), run("a3", "a", 3), run("a4", "a", 4, "running"),
            run("b1", "b", 1)]
    got = {p.run.id: (p.age, p.level) for p in plan(runs, Policy(1, 2))}
    assert got == {"a3": (0, "keep"), "a2": (1, "failing_only"), "a1": (2, "none"),
                   "b1": (0, "keep")}
    with pytest.raises(ConfigError, match="at least"):
        Policy(keep_nights=5, keep_failing=2)


def test_prune_keeps_failing_evidence_longer_and_history_whole(tmp_path: Path):
    db, ids = _nights(tmp_path)
    with Store(db) as store:
        before = {r: store.counts(r) for r in ids}
        sigs_before = {r: store.load_run(r).signatures for r in ids}
        sizes = {r: disk_usage(tmp_path / r) for r in ids}
        ok_dirs = {r: {(tmp_path / r / rel).parent for b in store.boots(r, with_findings=False)
                       if b.outcome == "ok" for _n, rel in b.artifacts} for r in ids}
        assert all(d.is_dir() for r in ids for d in ok_dirs[r])
        for r in ids:  # a file of the boot that no artifact names goes with its folder
            for d in ok_dirs[r]:
                (d / "host-vcpus.json").write_text("{}")
        results = {r.run_id: r for r in prune(store, Policy(keep_nights=1, keep_failing=3))}
        # night-3 is the newest: untouched; night-2, night-1 keep failing boots; night-0 none
        assert [results[r].level for r in ids] == ["none", "failing_only", "failing_only",
                                                   "keep"]
        assert results["night-3"].files_removed == 0
        for rid in ("night-1", "night-2"):
            assert results[rid].bytes_after < sizes[rid]
            boots = store.boots(rid, with_findings=False)
            failing = [b for b in boots if b.outcome != "ok" and b.artifacts]
            assert failing, "a night with failing boots"
            for b in failing:
                assert all((tmp_path / rid / rel).exists() for _n, rel in b.artifacts)
            assert all(not b.artifacts for b in boots if b.outcome == "ok")
            assert ok_dirs[rid] and not any(d.exists() for d in ok_dirs[rid])
        assert all(not b.artifacts for b in store.boots("night-0", with_findings=False))
        assert not any(p.is_file() and p.name in ("dmesg.txt", "console.log")
                       for p in (tmp_path / "night-0").rglob("*"))
        newest = store.boots("night-3", with_findings=False)
        assert all((tmp_path / "night-3" / rel).exists()
                   for b in newest for _n, rel in b.artifacts)
        # the database: same counts, same signatures and findings, pruning recorded
        for r in ids:
            assert store.counts(r) == before[r]
            assert store.load_run(r).signatures == sigs_before[r]
        old = [b for b in store.boots("night-0") if b.outcome == "vcpu_offline"]
        assert old and all(b.findings for b in old)
        assert all("artifacts_pruned" in dict(b.extra) for b in old)
        # reports still read whole: the old night's failing cells, its signatures
        paths = write_reports(store, "night-0", ("md", "json", "html"), tmp_path / "rep",
                              previous=False)
        md = paths["md"].read_text()
        assert "vCPU offline" in md and "fail" in md
        # a second prune changes nothing
        again = prune(store, Policy(keep_nights=1, keep_failing=3))
        assert sum(r.files_removed for r in again) == 0


def test_prune_cli_dry_run_and_bad_options(tmp_path: Path, capsys):
    db, _ids = _nights(tmp_path, 2)

    def harness(*args: str) -> tuple[int, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out + out.err

    size = disk_usage(tmp_path / "night-0")
    code, out = harness("prune", "--db", str(db), "--keep-nights", "0", "--keep-failing", "1",
                        "--dry-run")
    assert code == 0 and "would remove" in out and "(dry run)" in out, out
    assert disk_usage(tmp_path / "night-0") == size
    code, out = harness("prune", "--db", str(db), "--keep-nights", "3", "--keep-failing", "1")
    assert code == 2 and "must be at least" in out and "Traceback" not in out, out
    code, out = harness("prune", "--db", str(db), "--keep-nights", "1", "--keep-failing", "1",
                        "--matrix", "nope")
    assert code == 2 and "no run of matrix nope" in out, out
    code, out = harness("prune", "--db", str(db), "--keep-nights", "0", "--keep-failing", "0")
    assert code == 0 and "freed" in out
    assert disk_usage(tmp_path / "night-0") < size
