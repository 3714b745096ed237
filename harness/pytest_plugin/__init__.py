"""pytest plugin (entry point ``pytest11``): one test per matrix cell.

Registered for every pytest session in an environment where the harness is installed;
it does nothing unless ``--matrix`` is given.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vm-boot-harness", "vm-boot-harness: boot a matrix as tests")
    group.addoption("--matrix", action="store", default=None, metavar="MATRIX.yaml",
                    help="run one test per cell of this matrix file")
