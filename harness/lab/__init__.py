"""The local lab: real aarch64 guests (Debian arm64 kernels + a busybox/dropbear
initramfs) booted under libvirt on this machine, and a host-side stall injector that
reproduces the FT-2500 symptom (``CPUn: failed to come online``) on purpose.

``harness lab setup`` builds everything into the cache directory (``paths.py``);
``harness lab doctor`` says what is missing and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.backend.base import BootRequest
    from harness.inventory import Lab


def hooks_for(lab: Lab) -> Callable[[BootRequest], list[Any]] | None:
    """The boot loop's fault hooks for ``lab`` (see ``harness.lab.stall``)."""
    from harness.lab.stall import hooks_for as _hooks_for

    return _hooks_for(lab)
