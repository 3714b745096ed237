"""Retention: how long each boot's evidence (console, dmesg, host evidence, meta.json)
stays on disk; the results database keeps every boot's outcome, findings and signatures
for good, so history and reports stay whole (docs/results.md, "Retention").

Per matrix, nights are its runs newest first (a run still going is never touched and
not counted):

- the newest ``keep_nights`` keep everything;
- the next ones, up to the newest ``keep_failing``, keep only the failing boots'
  evidence (vCPU offline, boot failure, infrastructure error): passing boots' files go;
- older ones keep no boot files at all.

The run's reports (report.html, junit.xml, ...) are never removed: the HTML embeds the
lines around every finding, so it still tells the story. ``plan`` is pure; ``prune``
removes files (only inside the run's folder), then marks the boots in the database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.store import RunInfo, Store

PASSING = frozenset({"ok"})
LEVELS = ("keep", "failing_only", "none")  # what a night keeps of its boots' files


@dataclass(frozen=True)
class Policy:
    keep_nights: int  # newest nights keeping every boot's evidence
    keep_failing: int  # newest nights keeping failing boots' evidence (>= keep_nights)

    def __post_init__(self) -> None:
        if self.keep_nights < 0 or self.keep_failing < 0:
            raise ConfigError("--keep-nights and --keep-failing must be 0 or more")
        if self.keep_failing < self.keep_nights:
            raise ConfigError(f"--keep-failing ({self.keep_failing}) must be at least "
                              f"--keep-nights ({self.keep_nights}): failing boots' evidence "
                              "is kept longer than passing boots', never shorter")


@dataclass(frozen=True)
class NightPlan:
    run: RunInfo
    age: int  # 0: the newest night of its matrix
    level: str  # one of LEVELS


@dataclass(frozen=True)
class NightResult:
    run_id: str
    matrix: str
    age: int
    level: str
    boots_pruned: int  # boots whose files went
    files_removed: int
    bytes_before: int  # disk used by the run's folder (du), before and after
    bytes_after: int
    folder: str | None


def plan(runs: Iterable[RunInfo], policy: Policy) -> list[NightPlan]:
    """Each finished (or interrupted) run with what it keeps, newest first per matrix."""
    by_matrix: dict[str, list[RunInfo]] = {}
    for r in runs:
        if r.status == "running":
            continue
        by_matrix.setdefault(r.matrix, []).append(r)
    out: list[NightPlan] = []
    for matrix in sorted(by_matrix):
        nights = sorted(by_matrix[matrix], key=lambda r: (r.started, r.id), reverse=True)
        for age, r in enumerate(nights):
            level = ("keep" if age < policy.keep_nights else
                     "failing_only" if age < policy.keep_failing else "none")
            out.append(NightPlan(r, age, level))
    return out


def drops(level: str, outcome: str) -> bool:
    """Does a night at ``level`` drop the files of a boot with ``outcome``?"""
    if level == "keep":
        return False
    if level == "failing_only":
        return outcome in PASSING
    return True


def disk_usage(path: Path | None) -> int:
    """Bytes the folder takes on disk (blocks, like ``du``), folders included."""
    if path is None or not path.exists():
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in (".", *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def _inside(root: Path, rel: str) -> Path | None:
    p = (root / rel).resolve()
    return p if p.is_relative_to(root) and p != root else None


def _remove_boot_files(root: Path, arts: Sequence[Sequence[str]]) -> int:
    n = 0
    dirs: set[Path] = set()
    for _name, rel in arts:
        p = _inside(root, rel)
        if p is None:
            continue  # never outside the run's folder, whatever the database says
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
        dirs.add(p.parent)
    for d in sorted(dirs, key=lambda x: len(x.parts), reverse=True):
        if len(d.relative_to(root).parts) == 2 and d.is_dir():  # <cell>/<index>/: the boot's
            for extra in d.iterdir():  # files no artifact names (e.g. host-vcpus.json)
                if extra.is_file() and not extra.is_symlink():
                    extra.unlink()
                    n += 1
        while d != root and d.is_relative_to(root):
            try:
                d.rmdir()  # only when empty
            except OSError:
                break
            d = d.parent
    return n


def prune(store: Store, policy: Policy, *, matrices: Sequence[str] = (),
          dry_run: bool = False) -> list[NightResult]:
    """Apply ``policy`` to the runs in ``store`` (of ``matrices``, or all)."""
    from harness.report.write import run_folder

    runs = [r for r in store.list_runs() if not matrices or r.matrix in matrices]
    if matrices:
        unknown = sorted(set(matrices) - {r.matrix for r in runs})
        if unknown:
            raise ConfigError(f"no run of matrix {', '.join(unknown)} in {store.location}")
    out: list[NightResult] = []
    for night in plan(runs, policy):
        root = run_folder(store, night.run)
        root = root.resolve() if root is not None else None
        before = disk_usage(root)
        boots: list[tuple[str, int]] = []
        files = 0
        if night.level != "keep":
            for cell_id, idx, outcome, arts in store.artifact_refs(night.run.id):
                if not drops(night.level, outcome):
                    continue
                boots.append((cell_id, idx))
                if root is not None and not dry_run:
                    files += _remove_boot_files(root, arts)
                elif root is not None:
                    files += sum(1 for _n, rel in arts if (p := _inside(root, rel))
                                 and p.exists())
            if boots and not dry_run:
                store.forget_artifacts(night.run.id, boots)
        after = before if dry_run else disk_usage(root)
        out.append(NightResult(night.run.id, night.run.matrix, night.age, night.level,
                               len(boots), files, before, after,
                               str(root) if root is not None else None))
    return out
