"""Strip what surrounds a kernel message on its way to us (pure, one line at a time).

A line may carry, in any order that occurs in practice: ``> `` quote marks (mail, issues),
ANSI escapes, a syslog or journal prefix (``Nov 25 04:29:11 host kernel: ``, ISO dates),
``dmesg -x`` facility/level (``kern  :crit  : ``), a ``<2>`` level, a ``[    8.124952]``
uptime stamp, a ``[    T1]`` caller id, a ``dmesg -T`` date (``[Wed Nov 25 04:29:11 2026]``),
and a trailing CR. When console output interleaves with the kernel's, the message starts
after the last uptime stamp of the line.
"""

from __future__ import annotations

import re

from harness.classify.rules import PREFILTER as KEYWORDS

_ANSI = re.compile(
    r"\x1b(?:\[[0-9;?<=>]*[ -/]*[@-~]"  # CSI: colours, cursor
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: window titles
    r"|[()][0-9A-Za-z]|[@-_])"  # charset selection, two-byte escapes
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_QUOTES = re.compile(r"^(?:[ \t]*>)+[ \t]?")
_LEVELS = "emerg|alert|crit|err|warn|warning|notice|info|debug"
_FACILITIES = "kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]"
_PREFIX = re.compile(
    r"""(?:
        (?P<lvl><\d{1,3}>)
      | \[\s*(?P<up>\d+\.\d+)\]
      | \[\s*[CT]\d+\]
      | \[[A-Z][a-z]{2}\s+[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d\s+\d{4}\]
      | \d{4}-\d\d-\d\d[T\ ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?
      | [A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\.\d+)?
      | (?:"""
    + _FACILITIES
    + r""")\s*:\s*(?:"""
    + _LEVELS
    + r""")\s*:
      | (?:\S+\s+)?kernel(?:\[\d+\])?:
    )[ \t]*""",
    re.VERBOSE,
)
_STAMP = re.compile(r"\[\s*(\d+\.\d+)\]\s?")
# printk lines are at most ~1 KiB; anything longer is console garbage (cut: no slow regexes)
MAX_LINE = 4096
_ELISION = re.compile(r"^(?:\.{3,}|…|\[\.\.\.\]|\[…\]|\(\.\.\.\)|\.\.\.\s*\(?snip(?:ped)?\)?)$")


def clean(raw: str) -> tuple[str, float | None]:
    """One raw line -> (the kernel message, its uptime in seconds or None).

    Never raises. An elision mark (``...``, ``[...]``) or an empty line gives ``("", None)``.
    """
    line = raw[:MAX_LINE].rstrip("\r\n")
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    if "\r" in line:
        # a bare CR (progress bars) puts several writes on one line: keep the last one that
        # looks like kernel output, else the last one (what a terminal would show)
        parts = [p for p in line.split("\r") if p.strip()] or [""]
        kernel = [p for p in parts if KEYWORDS.search(p)]
        line = (kernel or parts)[-1]
    line = _CONTROL.sub("", line).strip()
    if line.startswith(">"):
        line = _QUOTES.sub("", line).strip()
    uptime: float | None = None
    pos = 0
    n = len(line)
    for _ in range(8):  # a handful of stacked prefixes at most
        if pos >= n:
            break
        m = _PREFIX.match(line, pos)
        if m is None or m.end() == pos:
            break
        if m.group("up") is not None:
            uptime = _seconds(m.group("up"))
        pos = m.end()
    msg = line[pos:]
    if "[" in msg:
        # console output interleaved with the kernel's: the message follows the last stamp
        last = None
        for m in _STAMP.finditer(msg):
            last = m
        if last is not None:
            uptime = _seconds(last.group(1))
            msg = msg[last.end():]
    msg = msg.strip()
    if _ELISION.match(msg):
        return "", None
    return msg, uptime


def _seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # pragma: no cover - the regex only lets digits through
        return None
