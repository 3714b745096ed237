"""pytest plugin (entry point ``pytest11``): a matrix becomes a pytest session, one test
per cell.

    pytest --matrix matrices/eas-66611-sim.yaml [--matrix-boots N] [--matrix-run-id ID] [-n 2]

Registered wherever the harness is installed; it does nothing unless ``--matrix`` is
given. With ``--matrix`` and no test paths on the command line, only the matrix's cells
are collected (the matrix file is collected like a test file); ``pytest --matrix X
tests/test_mine.py`` adds your own tests, which may use the fixtures in
:mod:`harness.pytest_plugin.fixtures`.

pytest-xdist: every cell carries ``xdist_group(<host>)`` and ``--dist loadgroup`` is chosen
automatically, so one host's cells stay on one worker and a host never gets more guests
than its ``slots`` (the worker boots a cell's boots on up to ``slots`` slots). The
controller creates one run in the lab's store, hands its id to the workers
(``pytest_configure_node``), and writes the reports once at the end of the session.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.pytest_plugin.items import (
    STATE_KEY,
    CellItem,
    MatrixFile,
    PluginState,
    undecided_status,
)
from harness.store.target import describe

__all__ = ["CellItem", "MatrixFile", "PluginState"]

pytest_plugins = ["harness.pytest_plugin.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vm-boot-harness", "vm-boot-harness: boot a matrix as tests")
    group.addoption("--matrix", action="store", default=None, metavar="MATRIX.yaml",
                    help="run one test per cell of this matrix file")
    group.addoption("--matrix-boots", "--boots", dest="matrix_boots", type=int, default=None,
                    metavar="N", help="boots per cell instead of the matrix's")
    group.addoption("--matrix-run-id", "--run-id", dest="matrix_run_id", default=None,
                    metavar="ID", help="the run's id in the store (default: made up; an "
                    "existing id continues that run)")
    group.addoption("--matrix-time-scale", dest="matrix_time_scale", type=float, default=None,
                    metavar="X", help="simulated hosts: 0 = no waiting, 1 = real durations")
    group.addoption("--matrix-db", dest="matrix_db", default=None, metavar="FILE|URL",
                    help="the results database: a file or postgresql:// URL (default: "
                    "$VMBH_DB, the lab's results:, else under reports/)")
    group.addoption("--matrix-reports", dest="matrix_reports", default="html,junit,md,json",
                    metavar="FORMATS", help="reports written at the end ('' for none)")
    group.addoption("--matrix-reports-dir", dest="matrix_reports_dir", default="reports",
                    metavar="DIR", help="where runs' artifacts and reports go")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Choose ``--dist loadgroup`` for a matrix run under ``-n`` (one host, one worker)."""
    if (config.getoption("matrix", None) and getattr(config.option, "numprocesses", None)
            and getattr(config.option, "dist", "no") in ("no", "load")):
        config.option.dist = "loadgroup"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness_cell(id): a test that boots one matrix cell")
    matrix_path = config.getoption("matrix", None)
    if not matrix_path:
        return
    state = PluginState.from_config(config, Path(matrix_path))
    config.stash[STATE_KEY] = state
    # collect the matrix file; the configured testpaths only when paths were named
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args.append(str(matrix_path))
    else:
        config.args = [str(matrix_path)]
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        state.run_id = workerinput["harness_run_id"]
        # workers re-parse the command line, where --dist was not given: keep the
        # controller's choice so xdist groups a host's cells on one worker
        if workerinput.get("harness_loadgroup"):
            config.option.loadgroup = True
    else:
        state.create_run()


def pytest_configure_node(node: Any) -> None:
    """xdist controller -> worker: every worker writes into the controller's run."""
    state = node.config.stash.get(STATE_KEY, None)
    if state is not None:
        node.workerinput["harness_run_id"] = state.run_id
        node.workerinput["harness_loadgroup"] = node.config.option.dist == "loadgroup"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> MatrixFile | None:
    state = parent.config.stash.get(STATE_KEY, None)
    if state is not None and file_path.resolve() == state.matrix_path.resolve():
        return MatrixFile.from_parent(parent, path=file_path)
    return None


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, str] | None:
    return undecided_status(report)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput"):
        return None
    return [f"matrix: {state.matrix.name} ({len(state.matrix.cells)} cells), "
            f"run {state.run_id}, database {describe(state.db)}"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STATE_KEY, None)
    if state is None or hasattr(session.config, "workerinput"):
        return  # workers only record; the controller finishes the run once
    state.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    state = config.stash.get(STATE_KEY, None)
    if state is None or hasattr(config, "workerinput"):
        return
    tr = terminalreporter
    tr.section("vm-boot-harness")
    tr.write_line(f"run {state.run_id} recorded in {describe(state.db)}")
    for fmt, path in sorted(state.reports.items()):
        tr.write_line(f"{fmt:>6}: {path}")
    if os.environ.get("PYTEST_XDIST_WORKER") is None and state.error:
        tr.write_line(f"reports not written: {state.error}")
