"""Watching the serial console while waiting for SSH (pure).

The boot loop polls the console text and asks ``watch`` what it shows: the kernel started,
a panic (the boot fails at once instead of waiting out the boot timeout), or a reboot loop
(the kernel started again and again within one boot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KERNEL_START = re.compile(r"Booting Linux on physical CPU|Linux version \d")
BOOT_BANNER = re.compile(r"Booting Linux on physical CPU")
PANIC = re.compile(r"Kernel panic - not syncing: ?(?P<why>.*?)(?: \]---)?\s*$")
# the kernel started this many times in one boot: a reboot loop
REBOOT_LOOP_STARTS = 3


@dataclass(frozen=True)
class ConsoleState:
    lines: int = 0  # non-empty lines seen
    kernel_started: bool = False
    kernel_starts: int = 0
    panic: str | None = None  # the first panic line, without prefixes

    @property
    def reboot_loop(self) -> bool:
        return self.kernel_starts >= REBOOT_LOOP_STARTS

    @property
    def failed(self) -> str | None:
        """Why the boot has already failed, or None while it may still come up."""
        if self.panic is not None:
            return f"kernel panic: {self.panic}" if self.panic else "kernel panic"
        if self.reboot_loop:
            return f"reboot loop: the kernel started {self.kernel_starts} times"
        return None


def watch(text: str) -> ConsoleState:
    """What a console text shows so far."""
    lines = 0
    starts = 0
    linux_version_seen = False
    panic: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        lines += 1
        if BOOT_BANNER.search(line):
            starts += 1
        elif KERNEL_START.search(line) and not linux_version_seen and starts == 0:
            linux_version_seen = True
        if panic is None:
            m = PANIC.search(line)
            if m:
                panic = m.group("why").strip()
    if starts == 0 and linux_version_seen:
        starts = 1
    return ConsoleState(lines=lines, kernel_started=starts > 0, kernel_starts=starts,
                        panic=panic)
