"""The kernel's CPU list syntax (``/sys/devices/system/cpu/online``): ``0-2,4-7``."""

from __future__ import annotations

from collections.abc import Iterable

# a CPU id beyond this is surely a typo (Linux NR_CPUS tops out at 8192 on arm64)
MAX_CPU_ID = 65535


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """``"0-2,4-7\\n"`` -> ``(0, 1, 2, 4, 5, 6, 7)``; ``""`` -> ``()``.

    Sorted, without duplicates. Raises ``ValueError`` saying which part is wrong.
    Accepts the kernel's own output (trailing newline) and spaces around items.
    """
    body = text.strip()
    if not body:
        return ()
    cpus: set[int] = set()
    for raw in body.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"empty item in CPU list {body!r} (stray comma?)")
        lo_text, sep, hi_text = item.partition("-")
        lo = _cpu_id(lo_text, item, body)
        hi = _cpu_id(hi_text, item, body) if sep else lo
        if hi < lo:
            raise ValueError(f"range {item!r} in CPU list {body!r} goes backwards")
        cpus.update(range(lo, hi + 1))
    return tuple(sorted(cpus))


def _cpu_id(part: str, item: str, body: str) -> int:
    part = part.strip()
    if not part.isascii() or not part.isdigit() or len(part) > 12:
        raise ValueError(
            f"{item!r} in CPU list {body!r} is not a CPU id or range (expected e.g. 0-2,4-7)")
    value = int(part)
    if value > MAX_CPU_ID:
        raise ValueError(f"CPU id {value} in CPU list {body!r} is larger than {MAX_CPU_ID}")
    return value


def format_cpu_list(cpus: Iterable[int]) -> str:
    """``(0, 1, 2, 4)`` -> ``"0-2,4"`` (sorted, duplicates ignored; ``()`` -> ``""``)."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)
