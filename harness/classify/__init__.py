"""Kernel output (dmesg, serial console, pasted logs) -> findings, signatures, a verdict.

Pure functions, no I/O::

    from harness.classify import classify, classify_lines, parse_cpu_list, format_cpu_list

See docs/classify.md for the messages recognised and the verdict rules.
"""

from __future__ import annotations

from harness.classify.cpulist import format_cpu_list, parse_cpu_list
from harness.classify.result import (
    VERDICTS,
    BootReport,
    Classification,
    PsciError,
    SignatureCount,
)
from harness.classify.verdict import classify, classify_lines

__all__ = [
    "VERDICTS",
    "BootReport",
    "Classification",
    "PsciError",
    "SignatureCount",
    "classify",
    "classify_lines",
    "format_cpu_list",
    "parse_cpu_list",
]
