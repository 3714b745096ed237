"""A folder for a test's lab file beside the local lab, for the tests that boot real
guests through the lab's own embedded libvirt root (test_local_lab.py,
test_bisect_local.py): the lab is set up first (``harness lab setup``, idempotent), and a
clear failure, not a hang, when another process holds that libvirt root."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def local_lab_root(prefix: str) -> Iterator[Path]:
    """A fresh folder under /tmp (short: QEMU's socket paths must fit), removed after."""
    from harness.lab.embed import holder  # here: the test modules skip before needing it
    from harness.lab.paths import layout
    from harness.lab.setup import setup

    lay = layout()
    setup(lay, install=os.geteuid() == 0)
    other = holder(lay.libvirt)
    if other is not None and other != os.getpid():
        pytest.fail(f"process {other} holds the local lab's libvirt ({lay.libvirt}): "
                    "let that `harness run` finish first", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
