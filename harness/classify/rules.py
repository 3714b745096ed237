"""Declarative patterns: which kernel messages matter, and their normalized titles.

Each ``Rule`` recognises one message (in every wording of arm64 Linux 4.4 to 7.x, see
``docs/classify.md``) in a message already stripped of its prefixes. ``match`` turns a
message into an ``Event``; the stream state machine (``dmesg.py``) decides what it means
for the boot. Titles follow syzkaller's pkg/report: no numbers, addresses, CPU ids or PIDs,
so a nightly can count them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# kinds that say a secondary CPU did not come up (the CPU is offline afterwards)
CPU_FAILURE_KINDS = frozenset({
    "cpu_failed_online", "cpu_failed_unknown_state", "cpu_failed_boot", "psci_failed_boot",
    "cpu_died_early", "cpu_stuck", "cpu_unclean_shutdown", "cpu_will_not_boot",
    "cpu_no_52bit_va", "cpu_no_granule", "cpu_failed_alive",
})
# kinds that end a boot (when seen inside the boot window, see dmesg.BOOT_WINDOW_S)
FATAL_KINDS = frozenset({"panic", "rootfs_mount_failed"})
# kinds kept as findings but never titled as a signature (context of another report)
UNTITLED_KINDS = frozenset({"cut_here", "call_trace"})
# bring-up and boot structure, not findings
EVENT_KINDS = frozenset({
    "boot_start", "linux_version", "bringup_start", "brought_up", "smp_total",
    "booted_secondary", "panic_end",
})


@dataclass(frozen=True)
class Event:
    """What one message says. ``title`` is empty for structure events."""

    kind: str
    title: str = ""
    cpu: int | None = None
    errno: int | None = None
    value: str | None = None  # panic reason, kernel release, CPU count as text


_NUM_ADDR = re.compile(r"\b(?:0x)?[0-9a-fA-F]{8,}\b|\b0x[0-9a-fA-F]+\b")
_NUM_CPU = re.compile(r"\bCPU#?\s?\d+")
_NUM_TASK = re.compile(r"\s*\[[^\]\s]+:\d+\]")
_NUM = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
_SRC_ROOTS = ("arch/", "block/", "crypto/", "drivers/", "fs/", "include/", "init/", "ipc/",
              "kernel/", "lib/", "mm/", "net/", "security/", "sound/", "virt/")


def normalize(text: str) -> str:
    """Remove what differs between two reports of the same failure (ids, numbers)."""
    text = _NUM_TASK.sub("", text)
    text = _NUM_ADDR.sub("ADDR", text)
    text = _NUM_CPU.sub("CPU", text)
    text = _NUM.sub("NUM", text)
    return _SPACES.sub(" ", text).strip()


def source_path(path: str) -> str:
    """``/srv/build/kernel-source/kernel/sched/walt.c`` -> ``kernel/sched/walt.c``."""
    for root in _SRC_ROOTS:
        i = path.find("/" + root)
        if path.startswith(root):
            return path
        if i >= 0:
            return path[i + 1:]
    return path


def _head(text: str) -> str:
    """The descriptive head of a free-form report line (``soft lockup - CPU#3 ...``)."""
    cut = len(text)
    for sep in (": ", " - ", ", ", " at ", " on CPU", "!", " (", " in "):
        i = text.find(sep)
        if 0 < i < cut:
            cut = i
    return normalize(text[:cut]).rstrip(".")


def _func(sym: str) -> str:
    """``dev_watchdog+0x310/0x318`` or ``foo()`` -> ``dev_watchdog``."""
    return sym.split("+", 1)[0].removesuffix("()").strip("[]<>")


def panic_title(reason: str) -> str:
    if "Attempted to kill init!" in reason:
        return "kernel panic: Attempted to kill init!"
    if "Unable to mount root fs" in reason:
        return "kernel panic: VFS: Unable to mount root fs"
    if "detected unsupported configuration" in reason:
        return "kernel panic: CPU detected unsupported configuration"
    return "kernel panic: " + normalize(reason).rstrip(".")


Handler = Callable[[re.Match[str]], Event]


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    make: Handler
    key: str = ""  # a literal the message must contain (a cheap test before the regex)

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", _literal(self.pattern.pattern))


def _literal(regex: str) -> str:
    """The longest run of plain characters every match of ``regex`` contains (the rule's
    cheap first test): groups and quantified characters are dropped, escapes split runs."""
    prev = None
    while prev != regex:  # innermost groups first, until none is left
        prev, regex = regex, re.sub(r"\((?:[^()\\]|\\.)*\)[?*+]?|\[(?:[^\]\\]|\\.)*\][?*+]?",
                                    "|", regex)
    regex = re.sub(r"(?:\\.|[^\\])(?:[?*]|\{[^}]*\})", "|", regex)
    runs = re.split(r"\\.|[\\^$.|?*+()\[\]{}]", regex)
    return max(runs, key=len)


# the largest |errno| believed; a bigger number in a message stays in its text but is
# not used as a number (a guest may print anything; CPU ids: see dmesg.MAX_CPU_ID)
MAX_ERRNO = 1 << 16


def number(text: str | None, limit: int) -> int | None:
    """``text`` as an int when it is one within ``[-limit, limit]``, else None."""
    if text is None:
        return None
    body = text.strip()
    digits = body[1:] if body[:1] in "+-" else body
    if not digits or len(digits) > 12 or not digits.isascii() or not digits.isdigit():
        return None
    value = int(body)
    return value if -limit <= value <= limit else None


def _cpu_rule(kind: str, title: str, regex: str, errno_group: int | None = None) -> Rule:
    def make(m: re.Match[str]) -> Event:
        errno = number(m.group(errno_group), MAX_ERRNO) if errno_group else None
        return Event(kind, title, cpu=int(m.group(1)), errno=errno)

    return Rule(kind, re.compile(regex), make)


def _plain(kind: str, title: str, regex: str) -> Rule:
    return Rule(kind, re.compile(regex), lambda m: Event(kind, title))


def _panic(m: re.Match[str]) -> Event:
    reason = m.group(1).strip()
    cpu_m = re.search(r"CPU(\d+):? detected unsupported configuration", reason)
    return Event("panic", panic_title(reason), cpu=int(cpu_m.group(1)) if cpu_m else None,
                 value=reason)


def _panic_end(m: re.Match[str]) -> Event:
    reason = m.group(1).strip().removesuffix("]---").strip()
    return Event("panic_end", panic_title(reason), value=reason)


def _kill_init(m: re.Match[str]) -> Event:
    reason = m.group(0).strip()
    return Event("panic", panic_title(reason), value=reason)


def _oops(m: re.Match[str]) -> Event:
    return Event("oops", "Internal error: " + normalize(m.group(1)))


def _unable(m: re.Match[str]) -> Event:
    return Event("unable_to_handle", "Unable to handle kernel " + normalize(m.group(1)))


def _kernel_bug(m: re.Match[str]) -> Event:
    return Event("kernel_bug", f"kernel BUG at {source_path(m.group(1))}")


def _bug(m: re.Match[str]) -> Event:
    return Event("bug", "BUG: " + _head(m.group(1)))


def _warning_cpu(m: re.Match[str]) -> Event:
    func = _func(m.group("func") or "")
    where = func if func else source_path(m.group("file"))
    return Event("warning", f"WARNING in {where}")


def _warning(m: re.Match[str]) -> Event:
    return Event("warning", "WARNING: " + _head(m.group(1)))


def _lockdep_old(m: re.Match[str]) -> Event:
    return Event("warning", "WARNING: " + normalize(m.group(1)).rstrip("."))


def _soft_lockup(m: re.Match[str]) -> Event:
    return Event("soft_lockup", "BUG: soft lockup", cpu=int(m.group(1)))


def _version(m: re.Match[str]) -> Event:
    return Event("linux_version", value=m.group(1))


def _count(kind: str) -> Handler:
    return lambda m: Event(kind, value=m.group(1))


def _warning_new(m: re.Match[str]) -> Event:
    if m.group("file") is not None:
        return _warning_cpu(m)
    func = _func(m.group("func2") or "")
    return Event("warning", f"WARNING in {func or source_path(m.group('file2'))}")


_CPU = r"CPU(\d+)"
# Order matters: the first rule that matches a message wins.
RULES: tuple[Rule, ...] = (
    # boot structure and bring-up progress
    _plain("boot_start", "", r"^Booting Linux on physical CPU"),
    Rule("linux_version", re.compile(r"^Linux version (\S+)"), _version),
    _plain("bringup_start", "", r"smp: Bringing up secondary CPUs"),
    Rule("brought_up", re.compile(r"Brought up (?:\d+ nodes?, )?(\d+) CPUs?\b"),
         _count("brought_up")),
    Rule("smp_total", re.compile(r"SMP: Total of (\d+) processors? activated"),
         _count("smp_total")),
    _cpu_rule("booted_secondary", "", _CPU + r": Booted secondary processor"),
    # secondary CPU bring-up failures (arch/arm64/kernel/smp.c, psci.c, kernel/cpu.c)
    _cpu_rule("cpu_failed_online", "vCPU failed to come online", _CPU + r": failed to come online"),
    _cpu_rule("cpu_failed_unknown_state", "vCPU failed in unknown state",
              _CPU + r": failed in unknown state"),
    _cpu_rule("cpu_failed_boot", "vCPU failed to boot", _CPU + r": failed to boot: (-?\d+)", 2),
    _cpu_rule("psci_failed_boot", "psci: failed to boot CPU",
              r"(?:psci: )?failed to boot CPU(\d+)\s*\((-?\d+)\)", 2),
    _cpu_rule("cpu_died_early", "vCPU died during early boot", _CPU + r": died during early boot"),
    _cpu_rule("cpu_stuck", "vCPU is stuck in kernel", _CPU + r": is stuck in kernel"),
    _cpu_rule("cpu_unclean_shutdown", "vCPU may not have shut down cleanly",
              _CPU + r":? may not have shut down cleanly"),
    _cpu_rule("cpu_will_not_boot", "vCPU will not boot", _CPU + r": will not boot"),
    _cpu_rule("cpu_no_52bit_va", "vCPU does not support 52-bit VAs",
              _CPU + r": does not support 52-bit VAs"),
    _cpu_rule("cpu_no_granule", "vCPU does not support the page granule",
              _CPU + r": does not support \d+K granule"),
    _cpu_rule("cpu_failed_alive", "vCPU failed to report alive state",
              _CPU + r":? failed to report alive state"),
    # crashes and boot failures
    Rule("panic_end", re.compile(r"---\[ end Kernel panic - not syncing: ?(.*)"), _panic_end),
    Rule("panic", re.compile(r"Kernel panic - not syncing: ?(.*)"), _panic),
    Rule("panic", re.compile(r"Attempted to kill init!.*"), _kill_init),
    _plain("rootfs_mount_failed", "VFS: Unable to mount root fs",
           r"VFS: Unable to mount root fs on"),
    _plain("rootfs_mount_failed", "VFS: Cannot open root device", r"VFS: Cannot open root device"),
    Rule("oops", re.compile(r"Internal error: (.*?): ?[0-9a-fA-F]+ \[#\d+\]"), _oops),
    Rule("unable_to_handle", re.compile(r"Unable to handle kernel (.+?) at virtual address"),
         _unable),
    Rule("soft_lockup", re.compile(r"BUG: soft lockup - CPU#(\d+) stuck"), _soft_lockup),
    _plain("hard_lockup", "BUG: hard lockup", r"Watchdog detected hard LOCKUP on cpu"),
    _plain("rcu_stall", "INFO: rcu detected stall",
           r"INFO: \S+ (?:self-)?detected stalls? on CPU"),
    _plain("hung_task", "INFO: task hung", r"INFO: task \S+ blocked for more than \d+ seconds"),
    Rule("kernel_bug", re.compile(r"kernel BUG at (\S+?)(?::\d+)?!"), _kernel_bug),
    Rule("bug", re.compile(r"^(?:\S+: )?BUG: (.+)"), _bug),
    Rule("warning", re.compile(
        r"^WARNING: (?:CPU: \d+ PID: \d+ at (?P<file>\S+?):\d+ ?(?P<func>\S+)?"
        r"|(?P<file2>\S+?):\d+ at (?P<func2>\S+?),? CPU#\d+)"), _warning_new),
    Rule("warning", re.compile(r"^WARNING: at (?P<file>\S+?):\d+ ?(?P<func>\S+)?"), _warning_cpu),
    # lockdep and RCU-lockdep reports (firmware also prints "WARNING: ...": not those)
    Rule("warning", re.compile(r"^WARNING: (.*(?:lock|RCU|dependency).*)"), _warning),
    Rule("warning", re.compile(r"^\[ INFO: (.+?) \]$"), _lockdep_old),
    _plain("cut_here", "", r"-+\[ cut here \]-+"),
    _plain("call_trace", "", r"^Call [Tt]race:"),
)


# cheap first test on the raw line: a line without any of these is noise
# (every alternative starts with a capital or "-": the regex engine skips ahead fast)
PREFILTER = re.compile(
    r"CPU|Brought|SMP: Total|Linux|Kernel panic|Attempted to kill|VFS:|Internal error"
    r"|Unable to handle|BUG|LOCKUP|INFO|WARNING|-\[ cut here|Call [Tt]race"
)


def match(message: str) -> Event | None:
    """The event one prefix-free message carries, or None."""
    for rule in RULES:
        if rule.key in message:
            m = rule.pattern.search(message)
            if m is not None:
                return rule.make(m)
    return None
