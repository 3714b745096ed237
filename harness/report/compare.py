"""Two recorded runs of a matrix against each other: which cells and signatures got worse
or better. A change is flagged only when it is significant: a two-sided exact test
(``harness.stats.exact_test``: Boschloo, Fisher for large tables) per cell and outcome
class, Holm-adjusted across the whole family; a new signature is always listed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from scipy.stats import fisher_exact

from harness import stats
from harness.model import Outcome
from harness.report.view import CellChange, Rate, RunDiff, SignatureChange
from harness.store import RunData

OUTCOMES = (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE)


def _rate(k: int, n: int, confidence: float) -> Rate:
    r = stats.rate(k, n, confidence)
    return r


def _direction(ka: int, na: int, kb: int, nb: int) -> str:
    """'worse' when the rate went up from a to b (events are failures)."""
    if na == 0 or nb == 0:
        return "same"
    d = kb / nb - ka / na
    return "worse" if d > 0 else "better" if d < 0 else "same"


Table = tuple[int, int, int, int]  # k_a, n_a, k_b, n_b


@cache
def _fisher(t: Table) -> float:
    ka, na, kb, nb = t
    return float(fisher_exact([[ka, kb], [na - ka, nb - kb]]).pvalue)


def exact_p_values(tables: Sequence[Table], screen: float) -> list[tuple[float, str]]:
    """Two-sided exact p-value of each table, (p, method).

    Boschloo's test costs ~40 ms per 50 x 50 table: thousands of cells would take
    minutes. Fisher's exact p-value is never below Boschloo's (Boschloo's p is the largest
    chance, over the nuisance rate, that Fisher's p comes out as small as observed, and
    Fisher's test is valid), so Fisher's p is computed first and Boschloo's only when
    Fisher's is below ``screen``. Each p is still a valid p-value: for x < screen the
    reported p <= x only when Boschloo's is; for x >= screen, reported p <= x implies
    Boschloo's p <= x. Choose ``screen`` a few times alpha: a table with Fisher p above it
    cannot be significant after Holm (Boschloo's p is rarely below a third of Fisher's)."""
    out: dict[Table, tuple[float, str]] = {}
    for t in dict.fromkeys(tables):
        ka, na, kb, nb = t
        if na == 0 or nb == 0 or ka + kb == 0 or (ka == na and kb == nb):
            out[t] = (1.0, "none")
            continue
        f = _fisher(t)
        out[t] = stats.exact_test(ka, na, kb, nb, "two-sided") if f < screen else (f, "fisher")
    return [out[t] for t in tables]


def _tests(tables: Sequence[Table], alpha: float) -> tuple[list[float], list[float],
                                                           list[str]]:
    results = exact_p_values(tables, min(1.0, 4 * alpha))
    raw = [p for p, _ in results]
    return raw, stats.holm(raw), [m for _, m in results]


def diff_runs(a: RunData, b: RunData, confidence: float = 0.95) -> RunDiff:
    """Run ``a`` (the older) against run ``b``; ``alpha`` is ``1 - confidence``."""
    alpha = round(1 - confidence, 10)
    a_cells = {cd.cell.id: cd for cd in a.cells}
    b_cells = {cd.cell.id: cd for cd in b.cells}
    common = [cid for cid in b_cells if cid in a_cells]
    tables: list[tuple[int, int, int, int]] = []
    keys: list[tuple[str, str]] = []
    for cid in common:
        ca, cb = a_cells[cid].counts, b_cells[cid].counts
        for o in OUTCOMES:
            tables.append((ca.k(o), ca.n, cb.k(o), cb.n))
            keys.append((cid, o.value))
    raw, adj, methods = _tests(tables, alpha)
    changes = []
    for (cid, name), (ka, na, kb, nb), p, pa, m in zip(keys, tables, raw, adj, methods,
                                                       strict=True):
        changes.append(CellChange(cid, name, _rate(ka, na, confidence), _rate(kb, nb, confidence),
                                  p, pa, pa < alpha, _direction(ka, na, kb, nb), m))
    return RunDiff(a.run.id, b.run.id, b.run.matrix, tuple(changes),
                   signature_changes(a, b, alpha),
                   tuple(cid for cid in a_cells if cid not in b_cells),
                   tuple(cid for cid in b_cells if cid not in a_cells), alpha)


def signature_changes(a: RunData, b: RunData, alpha: float) -> tuple[SignatureChange, ...]:
    """Boots per signature in each run (out of the run's guest boots), compared."""
    na = sum(cd.counts.n for cd in a.cells)
    nb = sum(cd.counts.n for cd in b.cells)
    ca = {s.title: s.count for s in a.signatures}
    cb = {s.title: s.count for s in b.signatures}
    titles = list(dict.fromkeys([*cb, *ca]))
    tables = [(min(ca.get(t, 0), na), na, min(cb.get(t, 0), nb), nb) for t in titles]
    raw, adj, methods = _tests(tables, alpha)
    out = []
    for t, (ka, _, kb, _), p, pa, m in zip(titles, tables, raw, adj, methods, strict=True):
        out.append(SignatureChange(t, ka, na, kb, nb, p, pa, pa < alpha,
                                   _direction(ka, na, kb, nb), new=t not in ca,
                                   gone=t not in cb, test=m))
    return tuple(sorted(out, key=lambda s: (not s.new, s.p_adjusted, s.title)))
