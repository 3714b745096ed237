"""Comparisons of two groups: one-sided Boschloo exact test, Newcombe's interval for the
difference, Holm across a family; grouping cells along any axis or host attribute."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

from harness.model import Cell, Outcome
from harness.stats.rates import CellCounts, Interval, _check, wilson

Alternative = Literal["greater", "less", "two-sided"]
JUDGED = (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE)

# Boschloo's exact test enumerates all n_a x n_b tables: ~0.4 s at 300 x 300, ~11 s at
# 1000 x 1000. Above this table size Fisher's exact test is used (Boschloo is uniformly
# more powerful than Fisher, so Fisher's p-value is larger: claims stay valid).
BOSCHLOO_MAX_TABLE = 90_000


def newcombe(k_a: int, n_a: int, k_b: int, n_b: int, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval (method 10, 1998) for p_a - p_b."""
    _check(k_a, n_a, confidence)
    _check(k_b, n_b, confidence)
    if n_a == 0 or n_b == 0:
        return Interval(-1.0, 1.0)
    pa, pb = k_a / n_a, k_b / n_b
    a, b = wilson(k_a, n_a, confidence), wilson(k_b, n_b, confidence)
    d = pa - pb
    low = d - math.sqrt((pa - a.low) ** 2 + (b.high - pb) ** 2)
    high = d + math.sqrt((a.high - pa) ** 2 + (pb - b.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))


@lru_cache(maxsize=4096)
def exact_test(k_a: int, n_a: int, k_b: int, n_b: int,
               alternative: Alternative = "greater") -> tuple[float, str]:
    """p-value of H0 p_a = p_b against ``alternative`` (p_a > p_b for "greater").
    Returns (p, method): Boschloo's exact test, or Fisher's for large tables."""
    from scipy import stats as sps  # SciPy costs 1 s to import: only when needed

    _check(k_a, n_a)
    _check(k_b, n_b)
    if n_a == 0 or n_b == 0 or k_a + k_b == 0 or (k_a == n_a and k_b == n_b):
        return 1.0, "none"  # nothing to compare: no data or no variation
    table = [[k_a, k_b], [n_a - k_a, n_b - k_b]]  # columns are the two samples
    if n_a * n_b <= BOSCHLOO_MAX_TABLE:
        p = float(sps.boschloo_exact(table, alternative=alternative).pvalue)
        return min(1.0, max(0.0, p)), "boschloo"
    return float(sps.fisher_exact(table, alternative=alternative).pvalue), "fisher"


@dataclass(frozen=True)
class Comparison:
    """Group a against group b for one outcome class; ``difference`` is rate a - rate b."""

    label: str
    outcome: str
    a: str
    b: str
    k_a: int
    n_a: int
    k_b: int
    n_b: int
    difference: float | None
    interval: Interval  # Newcombe at `confidence`
    alternative: Alternative
    p_value: float
    method: str  # "boschloo", "fisher" or "none"
    p_adjusted: float  # Holm across the family (== p_value until adjusted)
    significant: bool  # p_adjusted < 1 - confidence
    confidence: float = 0.95


def compare(label: str, a: CellCounts, b: CellCounts, outcome: Outcome | str, *,
            alternative: Alternative = "greater", confidence: float = 0.95,
            a_name: str = "a", b_name: str = "b") -> Comparison:
    """One comparison (not yet adjusted: pass the family through ``adjust``)."""
    o = Outcome(outcome)
    ka, kb = a.k(o), b.k(o)
    p, method = exact_test(ka, a.n, kb, b.n, alternative)
    diff = ka / a.n - kb / b.n if a.n and b.n else None
    return Comparison(label, o.value, a_name, b_name, ka, a.n, kb, b.n, diff,
                      newcombe(ka, a.n, kb, b.n, confidence), alternative, p, method, p,
                      p < 1 - confidence, confidence)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order (R's p.adjust "holm")."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def adjust(comparisons: Sequence[Comparison]) -> tuple[Comparison, ...]:
    """Holm-adjust a family of comparisons and set ``significant`` from the adjusted p."""
    adj = holm([c.p_value for c in comparisons])
    return tuple(replace(c, p_adjusted=p, significant=p < 1 - c.confidence)
                 for c, p in zip(comparisons, adj, strict=True))


def cell_value(cell: Cell, key: str) -> Any:
    """A cell's value for an axis, a cell field or a host attribute (KeyError if none)."""
    if key in ("host", "guest", "vcpus", "memory_mib", "matrix"):
        return getattr(cell, key)
    if key == "reboot":
        return str(cell.reboot)
    for name, value in (*cell.params, *cell.host_attrs):
        if name == key:
            return value
    raise KeyError(key)


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y or (str(x).lower() == str(y).lower())
    return x == y or str(x) == str(y)


def compare_along(cells: Iterable[tuple[Cell, CellCounts]], axis: str, a: Any, b: Any, *,
                  by: Sequence[str] = (), outcomes: Sequence[Outcome | str] = JUDGED,
                  alternative: Alternative = "greater",
                  confidence: float = 0.95) -> tuple[Comparison, ...]:
    """Compare cells whose ``axis`` is ``a`` with those where it is ``b``, separately for
    each combination of the ``by`` keys (pooling the counts of the other cells), for each
    outcome class; the whole family is Holm-adjusted. Example: ``axis="numa_patch",
    a=False, b=True, by=("guest",)`` asks, per guest, whether hosts without the NUMA
    patch fail more often. Groups missing either side are left out."""
    groups: dict[tuple[Any, ...], dict[str, CellCounts]] = {}
    for cell, counts in cells:
        try:
            value = cell_value(cell, axis)
            key = tuple(cell_value(cell, k) for k in by)
        except KeyError:
            continue
        side = "a" if _same(value, a) else "b" if _same(value, b) else None
        if side is None:
            continue
        g = groups.setdefault(key, {})
        g[side] = g.get(side, CellCounts()) + counts
    family = []
    for key, sides in groups.items():
        if "a" not in sides or "b" not in sides:
            continue
        where = ", ".join(f"{k}={v}" for k, v in zip(by, key, strict=True))
        for o in outcomes:
            label = f"{Outcome(o).value}: {axis}={a} vs {axis}={b}" + (
                f" ({where})" if where else "")
            family.append(compare(label, sides["a"], sides["b"], o, alternative=alternative,
                                  confidence=confidence, a_name=f"{axis}={a}",
                                  b_name=f"{axis}={b}"))
    return adjust(family)
