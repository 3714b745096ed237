"""``write_reports``: every report of a recorded run, in one call (the runner, the pytest
plugin and ``harness report`` use it), plus finding the results database of a run."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.history.baseline import find_baseline
from harness.history.runs import load_status
from harness.knownissues import KnownIssues, find_known_issues, for_kcidb
from harness.model import safe_name
from harness.report.build import build_view
from harness.report.html import write_html
from harness.report.jsonreport import write_json
from harness.report.junit import write_junit
from harness.report.kcidb import write_kcidb
from harness.report.markdown import write_markdown
from harness.report.view import RunView
from harness.store import DbTarget, RunData, RunInfo, Store, env_target, parse_target

FORMATS = ("html", "junit", "md", "json")  # the default set ("all")
EXTRA_FORMATS = ("kcidb",)  # on demand only
FILE_NAMES = {"html": "report.html", "junit": "junit.xml", "md": "summary.md",
              "json": "report.json", "kcidb": "kcidb.json"}
ALIASES = {"markdown": "md", "xml": "junit", "junit-xml": "junit", "htm": "html"}
WRITERS: dict[str, Callable[[RunView, Path], Path]] = {
    "html": write_html, "junit": write_junit, "md": write_markdown, "json": write_json,
    "kcidb": write_kcidb,
}


def parse_formats(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"html,md"`` or ``["html", "md"]`` -> ``("html", "md")``; unknown names are a
    ConfigError that lists the valid ones."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in items:
        name = raw.strip().lower()
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name == "all":
            out += FORMATS
        elif name in FORMATS or name in EXTRA_FORMATS:
            out.append(name)
        else:
            raise ConfigError(f"unknown report format {raw.strip()!r}; choose from "
                              f"{', '.join(FORMATS + EXTRA_FORMATS)} (or all)")
    if not out:
        raise ConfigError(f"no report format given; choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(out))


def artifacts_root(store: Store, data: RunData) -> Path | None:
    """The run's artifacts folder on this machine, if it can be found: as recorded when
    absolute, else relative to the working folder, the database's folder or its parent."""
    return run_folder(store, data.run)


def run_folder(store: Store, info: RunInfo) -> Path | None:
    """``artifacts_root`` from the run's record alone."""
    recorded = info.artifacts_dir
    if not recorded:
        return None
    p = Path(recorded)
    if p.is_absolute():
        return p if p.is_dir() else None
    db_dir = store.folder
    for base in (Path.cwd(), db_dir, db_dir.parent):
        if (base / p).is_dir():
            return (base / p).resolve()
    return None


def _atomic_write(writer: Callable[[RunView, Path], Path], view: RunView, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        writer(view, Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(store: Store, run_id: str, formats: str | Iterable[str] = FORMATS,
                  out_dir: Path | None = None, *, previous: str | bool = True,
                  kcidb: Mapping[str, Any] | None = None,
                  known: KnownIssues | None = None) -> dict[str, Path]:
    """Write the reports of run ``run_id``; returns ``{format: path}``.

    ``out_dir`` defaults to the run's artifacts folder (so artifact links are short),
    else ``<database folder>/<run-id>/``. ``previous``: True compares with the run's
    baseline (``harness.history.baseline``: the pinned run, else the latest complete
    comparable one), a run id with that run, False with none.
    Each file is written to a temporary name and renamed: a crash leaves either the old
    report or the new one, never half of one. ``kcidb``: options of the KCIDB writer
    (``origin``, ``base_url``, ``boots``; see harness.report.kcidb). ``known``: the known
    issues that mark signatures (default: ``known-issues.yaml`` beside the run's matrix
    file when it loads; a broken one is left out here, ``harness digest`` reports it)."""
    fmts = parse_formats(formats)
    data = store.load_run(run_id)
    root = artifacts_root(store, data)
    out = Path(out_dir) if out_dir is not None else (
        root or store.folder / safe_name(run_id))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the report folder {out}: {e.strerror}") from None
    prev_data, note = _baseline(store, data, previous)
    if known is None:
        try:
            known = find_known_issues(None, [data.run.matrix_file])
        except ConfigError:
            known = KnownIssues()
    view = build_view(data, previous=prev_data, artifacts_root=root, report_dir=out.resolve(),
                      previous_note=note, completeness=load_status(store, run_id), known=known)
    written: dict[str, Path] = {}
    for fmt in fmts:
        path = out / FILE_NAMES[fmt]
        writer = WRITERS[fmt]
        if fmt == "kcidb":
            titles = [t.title for t in view.signature_totals()]
            writer = functools.partial(write_kcidb, **{
                "known_issues": for_kcidb(known, titles), **(kcidb or {})})
        _atomic_write(writer, view, path)
        written[fmt] = path
    return written


def _baseline(store: Store, data: RunData, previous: str | bool) -> tuple[RunData | None, str]:
    """The run to compare with and why: the baseline rule (``harness.history``) for
    True, the given run for a run id, none for False."""
    if previous is True:
        choice = find_baseline(store, data.run.id)
        if choice.run_id is None:
            return None, choice.reason[0].upper() + choice.reason[1:]
        return store.load_run(choice.run_id, with_findings=False), "Baseline: " + choice.reason
    if isinstance(previous, str):
        return (store.load_run(previous, with_findings=False),
                f"Baseline: run {previous}, chosen by hand (--previous).")
    return None, "Not compared with a previous run."


def find_database(run_ids: Iterable[str], db: str | Path | None = None,
                  search: Path = Path("reports"), *, matrix: str | None = None) -> DbTarget:
    """The results database holding every run of ``run_ids`` (and runs of ``matrix``
    when given): ``db`` when given (a file or a ``postgresql://`` URL), else ``$VMBH_DB``,
    else the one ``*.db`` under ``search`` that has them (with neither runs nor matrix:
    the only ``*.db`` there)."""
    ids = list(run_ids)
    target = parse_target(db) if db is not None else env_target()
    if target is not None:
        if isinstance(target, Path) and not target.exists():
            raise ConfigError(f"no results database at {target}")
        return target
    candidates = sorted(search.glob("*.db")) if search.is_dir() else []
    if not candidates:
        raise ConfigError(f"no results database (*.db) under {search}/; pass --db PATH")
    if not ids and matrix is None:
        if len(candidates) == 1:
            return candidates[0]
        raise ConfigError(f"several results databases under {search}/ "
                          f"({', '.join(str(p) for p in candidates)}); pass --db PATH")
    for path in candidates:
        with Store(path, create=False) as store:
            runs = store.list_runs()
        known = {r.id for r in runs}
        if all(i in known for i in ids) and (
                matrix is None or any(r.matrix == matrix for r in runs)):
            return path
    what = f"run(s) {', '.join(ids)}" if ids else f"runs of matrix {matrix!r}"
    raise ConfigError(f"no database under {search}/ holds {what} (looked "
                      f"in {', '.join(str(p) for p in candidates)}); pass --db PATH")
