"""What is new in each cell since the baseline: the nightly regression rule.

Per cell, run ``now`` against its baseline ``before``:

- **new regression** when any of: the verdict turned from pass (or clean) to fail; an
  outcome class's rate is significantly higher (Fisher's one-sided exact test,
  ``now > before``);
  a signature never seen in the baseline's cell appears significantly often (the same
  one-sided test on boots showing it). The tests form one family, Holm-adjusted over
  the tests that can be significant at all (Tarone's rule: a table whose most extreme
  outcome, given its margins, has a p-value above alpha / m cannot count against the
  family's size m). A table with no event anywhere, or one event in 200 boots, is left
  out, so it costs the real changes no power.
- **recovery** when the verdict turned from fail to pass (or clean);
- **still failing** when the cell fails now and is not a new regression;
- ``not_measured`` (no guest boot now), ``new_cell`` (not in the baseline), ``unchanged``.

Every record here is a frozen dataclass: issue 19's known issues and notifications read
``Regressions.new_regressions``, ``.recoveries``, ``.still_failing`` and each cell's
``new_signatures``. Pure: ``regressions(before, now, ...)``; ``snapshots(run_data)``
turns a recorded run into the input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from harness.model import Outcome
from harness.stats import CellCounts, holm

if TYPE_CHECKING:
    from harness.store import RunData

CLASSES = (Outcome.VCPU_OFFLINE.value, Outcome.BOOT_FAILURE.value)
GOOD = ("pass", "clean")  # verdicts that say "no failure" (issue 15 adds "clean")


@dataclass(frozen=True)
class CellSnapshot:
    """One cell of one run, as the rule reads it."""

    cell_id: str
    counts: CellCounts
    verdict: str
    signatures: tuple[tuple[str, int], ...] = ()  # (title, boots showing it)


@dataclass(frozen=True)
class Test:
    """One one-sided test "is it higher now?" of a class rate or a signature."""

    cell_id: str
    subject: str  # "vcpu_offline", "boot_failure" or "signature"
    title: str  # the class, or the signature's title
    k_before: int
    n_before: int
    k_now: int
    n_now: int
    min_p: float  # the smallest p-value the table's margins allow (Fisher)
    in_family: bool  # can be significant (Tarone): counted in the Holm family
    p_value: float | None = None  # None when not in the family (never computed)
    p_adjusted: float | None = None
    method: str = ""  # "fisher" when tested
    significant: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "title": self.title,
                "before": {"k": self.k_before, "n": self.n_before},
                "now": {"k": self.k_now, "n": self.n_now}, "min_p": self.min_p,
                "in_family": self.in_family, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "test": self.method,
                "significant": self.significant}


SignatureTest = Test  # a Test whose subject is "signature"


@dataclass(frozen=True)
class CellRegression:
    cell_id: str
    status: str  # new_regression, recovery, still_failing, unchanged, not_measured, new_cell
    verdict_before: str | None
    verdict_now: str | None
    reasons: tuple[str, ...] = ()  # why it is a new regression / recovery, in words
    worse: tuple[Test, ...] = ()  # class rates significantly higher now
    new_signatures: tuple[Test, ...] = ()  # signatures absent from the baseline's cell
    gone_signatures: tuple[str, ...] = ()  # in the baseline's cell, not now
    tests: tuple[Test, ...] = ()  # every test made for this cell

    @property
    def regression(self) -> bool:
        return self.status == "new_regression"

    def as_dict(self) -> dict[str, Any]:
        return {"cell": self.cell_id, "status": self.status,
                "verdict_before": self.verdict_before, "verdict_now": self.verdict_now,
                "reasons": list(self.reasons),
                "new_signatures": [{"title": t.title, "now": t.k_now, "boots": t.n_now,
                                    "significant": t.significant}
                                   for t in self.new_signatures],
                "gone_signatures": list(self.gone_signatures),
                "tests": [t.as_dict() for t in self.tests]}


@dataclass(frozen=True)
class Regressions:
    """Run ``run_id`` against its baseline, cell by cell."""

    run_id: str
    baseline_id: str | None
    baseline_reason: str
    matrix: str
    alpha: float
    cells: tuple[CellRegression, ...] = ()
    family: int = 0  # tests in the Holm family (those that can be significant)
    tests: int = 0  # tests made in all
    only_in_baseline: tuple[str, ...] = ()

    def _with(self, status: str) -> tuple[CellRegression, ...]:
        return tuple(c for c in self.cells if c.status == status)

    @property
    def new_regressions(self) -> tuple[CellRegression, ...]:
        return self._with("new_regression")

    @property
    def recoveries(self) -> tuple[CellRegression, ...]:
        return self._with("recovery")

    @property
    def still_failing(self) -> tuple[CellRegression, ...]:
        return self._with("still_failing")

    @property
    def not_measured(self) -> tuple[CellRegression, ...]:
        return self._with("not_measured")

    @property
    def new_cells(self) -> tuple[CellRegression, ...]:
        return self._with("new_cell")

    @property
    def alarm(self) -> bool:
        """The nightly rule: is anything new broken?"""
        return bool(self.new_regressions)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "baseline": self.baseline_id,
                "baseline_reason": self.baseline_reason, "matrix": self.matrix,
                "alpha": self.alpha, "family": self.family, "tests": self.tests,
                "new_regressions": [c.as_dict() for c in self.new_regressions],
                "recoveries": [c.as_dict() for c in self.recoveries],
                "still_failing": [c.as_dict() for c in self.still_failing],
                "not_measured": [c.cell_id for c in self.not_measured],
                "new_cells": [c.cell_id for c in self.new_cells],
                "only_in_baseline": list(self.only_in_baseline)}


# --- the tests (pure) -------------------------------------------------------------------


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def min_p_value(k_now: int, n_now: int, k_before: int, n_before: int) -> float:
    """The smallest one-sided p-value ("higher now") the table's margins allow: Fisher's
    p of the most extreme table, every event in ``now`` (1.0 when there is no event)."""
    total, n = k_now + k_before, n_now + n_before
    if total == 0 or n_now == 0 or n_before == 0 or total == n:
        return 1.0
    x = min(total, n_now)
    log_p = _log_comb(n_now, x) + _log_comb(n_before, total - x) - _log_comb(n, total)
    return min(1.0, math.exp(log_p))


def tarone_family(min_ps: Sequence[float], alpha: float) -> list[bool]:
    """Tarone (1990): the smallest m such that at most m tests have a minimum p below
    alpha / m; those tests are the family (the others can never be significant)."""
    m_total = len(min_ps)
    for m in range(1, m_total + 1):
        if sum(1 for p in min_ps if p < alpha / m) <= m:
            return [p < alpha / m for p in min_ps]
    return [p < alpha / max(1, m_total) for p in min_ps]


@cache
def one_sided_p(k_now: int, n_now: int, k_before: int, n_before: int) -> float:
    """Fisher's one-sided exact p of "higher now". Fisher's, not Boschloo's: the family
    is chosen from the tables' margins (Tarone), so each test must be valid given its
    margins, which Fisher's conditional test is and Boschloo's unconditional one is not;
    with it the family-wise error stays at most alpha, whatever the margins."""
    from scipy.stats import fisher_exact

    if k_now + k_before == 0 or n_now == 0 or n_before == 0:
        return 1.0
    table = [[k_now, k_before], [n_now - k_now, n_before - k_before]]
    return float(fisher_exact(table, alternative="greater").pvalue)


def _tests(before: CellSnapshot, now: CellSnapshot) -> list[Test]:
    out = []
    a, b = before.counts, now.counts
    for o in CLASSES:
        ka, kb = a.k(o), b.k(o)
        out.append(Test(now.cell_id, o, o, ka, a.n, kb, b.n, min_p_value(kb, b.n, ka, a.n),
                        False))
    seen = dict(before.signatures)
    for title, count in now.signatures:
        if title in seen:
            continue  # a known signature's rate is its class's rate test
        k = min(count, b.n)
        out.append(Test(now.cell_id, "signature", title, 0, a.n, k, b.n,
                        min_p_value(k, b.n, 0, a.n), False))
    return out


def regressions(before: Sequence[CellSnapshot], now: Sequence[CellSnapshot], *,
                run_id: str = "", baseline_id: str | None = None, baseline_reason: str = "",
                matrix: str = "", alpha: float = 0.05) -> Regressions:
    """The nightly rule, cell by cell (see the module docstring)."""
    base = {c.cell_id: c for c in before}
    tests: list[Test] = []
    for c in now:
        if c.cell_id in base and c.counts.n > 0 and base[c.cell_id].counts.n > 0:
            tests += _tests(base[c.cell_id], c)
    in_family = tarone_family([t.min_p for t in tests], alpha)
    fam = [i for i, f in enumerate(in_family) if f]
    raw = [one_sided_p(tests[i].k_now, tests[i].n_now, tests[i].k_before, tests[i].n_before)
           for i in fam]
    adj = holm(raw)
    done = list(tests)
    for i, p, pa in zip(fam, raw, adj, strict=True):
        t = tests[i]
        done[i] = Test(t.cell_id, t.subject, t.title, t.k_before, t.n_before, t.k_now,
                       t.n_now, t.min_p, True, p, pa, "fisher", pa < alpha)
    by_cell: dict[str, list[Test]] = {}
    for t in done:
        by_cell.setdefault(t.cell_id, []).append(t)
    cells = [_judge_cell(base.get(c.cell_id), c, tuple(by_cell.get(c.cell_id, ())))
             for c in now]
    ids = {c.cell_id for c in now}
    return Regressions(run_id, baseline_id, baseline_reason, matrix, alpha, tuple(cells),
                       len(fam), len(tests), tuple(c for c in base if c not in ids))


def _label(o: str) -> str:
    return {"vcpu_offline": "vCPU offline", "boot_failure": "boot failure"}.get(o, o)


def _judge_cell(before: CellSnapshot | None, now: CellSnapshot,
                tests: tuple[Test, ...]) -> CellRegression:
    if before is None:
        return CellRegression(now.cell_id, "new_cell", None, now.verdict)
    vb, vn = before.verdict, now.verdict
    if now.counts.n == 0:
        return CellRegression(now.cell_id, "not_measured", vb, None,
                              ("no guest boot in this run",))
    worse = tuple(t for t in tests if t.subject != "signature" and t.significant)
    new_sigs = tuple(t for t in tests if t.subject == "signature")
    gone = tuple(t for t, _ in before.signatures if t not in dict(now.signatures))
    reasons = []
    if vb in GOOD and vn == "fail":
        reasons.append(f"verdict {vb} -> fail")
    for t in worse:
        reasons.append(f"{_label(t.subject)} higher: {t.k_before}/{t.n_before} -> "
                       f"{t.k_now}/{t.n_now} (one-sided Fisher, Holm-adjusted "
                       f"p = {t.p_adjusted:.2g})")
    for t in new_sigs:
        if t.significant:
            reasons.append(f"new signature {t.title!r}: {t.k_now}/{t.n_now} boots, none "
                           f"of {t.n_before} before (Holm-adjusted p = {t.p_adjusted:.2g})")
    if reasons:
        status = "new_regression"
    elif vb == "fail" and vn in GOOD:
        status = "recovery"
        reasons.append(f"verdict fail -> {vn}")
    elif vn == "fail":
        status = "still_failing"
    else:
        status = "unchanged"
    return CellRegression(now.cell_id, status, vb, vn, tuple(reasons), worse, new_sigs,
                          gone, tests)


def snapshots(data: RunData) -> list[CellSnapshot]:
    """The rule's input from a recorded run (verdicts by ``harness.stats.judge``)."""
    return [CellSnapshot(cd.cell.id, cd.counts, cd.judgement.status,
                         tuple((s.title, s.count) for s in cd.signatures))
            for cd in data.cells]

