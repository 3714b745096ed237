"""Two recorded runs of a matrix against each other: which cells and signatures got worse
or better. A change is flagged only when it is significant: a two-sided exact test
(``harness.stats.exact_test``: Boschloo, Fisher for large tables) per cell and outcome
class, Holm-adjusted across the whole family; a new signature is always listed."""

from __future__ import annotations

from collections.abc import Sequence

from harness import stats
from harness.model import Outcome
from harness.report.view import CellChange, Rate, RunDiff, SignatureChange
from harness.store import RunData

OUTCOMES = (Outcome.VCPU_OFFLINE, Outcome.BOOT_FAILURE)


def _rate(k: int, n: int, confidence: float) -> Rate:
    r = stats.rate(k, n, confidence)
    return Rate(r.k, r.n, r.value, r.low, r.high)


def _direction(ka: int, na: int, kb: int, nb: int) -> str:
    """'worse' when the rate went up from a to b (events are failures)."""
    if na == 0 or nb == 0:
        return "same"
    d = kb / nb - ka / na
    return "worse" if d > 0 else "better" if d < 0 else "same"


def _tests(tables: Sequence[tuple[int, int, int, int]]) -> tuple[list[float], list[float]]:
    raw = [stats.exact_test(ka, na, kb, nb, "two-sided")[0] for ka, na, kb, nb in tables]
    return raw, stats.holm(raw)


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
    raw, adj = _tests(tables)
    changes = []
    for (cid, name), (ka, na, kb, nb), p, pa in zip(keys, tables, raw, adj, strict=True):
        changes.append(CellChange(cid, name, _rate(ka, na, confidence), _rate(kb, nb, confidence),
                                  p, pa, pa < alpha, _direction(ka, na, kb, nb)))
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
    raw, adj = _tests(tables)
    out = []
    for t, (ka, _, kb, _), p, pa in zip(titles, tables, raw, adj, strict=True):
        out.append(SignatureChange(t, ka, na, kb, nb, p, pa, pa < alpha,
                                   _direction(ka, na, kb, nb), new=t not in ca,
                                   gone=t not in cb))
    return tuple(sorted(out, key=lambda s: (not s.new, s.p_adjusted, s.title)))
