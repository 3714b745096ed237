"""Fixtures for engineers writing their own tests against the lab.

- ``harness_matrix`` / ``harness_lab``: the ``--matrix`` file and its lab (session).
- ``harness_run_id``: the session's run in the store.
- ``boot_result``: ``boot_result(cell_id, boots=1) -> list[BootResult]`` boots a cell of
  the matrix through the full pipeline into the session's run and returns the results.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.inventory import Lab
from harness.matrix import Matrix
from harness.model import BootResult
from harness.pytest_plugin.items import STATE_KEY, PluginState


def _state(config: pytest.Config) -> PluginState:
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        raise pytest.UsageError("this fixture needs a matrix: run pytest with --matrix FILE")
    return state


@pytest.fixture(scope="session")
def harness_matrix(pytestconfig: pytest.Config) -> Matrix:
    return _state(pytestconfig).matrix


@pytest.fixture(scope="session")
def harness_lab(harness_matrix: Matrix) -> Lab:
    return harness_matrix.lab


@pytest.fixture(scope="session")
def harness_run_id(pytestconfig: pytest.Config) -> str:
    return _state(pytestconfig).run_id


@pytest.fixture
def boot_result(pytestconfig: pytest.Config) -> Callable[..., list[BootResult]]:
    state = _state(pytestconfig)

    def boot(cell_id: str, boots: int = 1) -> list[BootResult]:
        from harness.store import Store

        cell = state.matrix.cell(cell_id)
        with Store(state.db) as store:
            before = store.recorded(state.run_id, cell.id, include_infra=True)
        state.run_cell(cell, boots=len(before) + boots)
        with Store(state.db) as store:
            return [b for b in store.boots(state.run_id, cell.id) if b.index not in before]

    return boot
