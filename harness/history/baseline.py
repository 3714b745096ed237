"""Which earlier run a run is compared with (its baseline), and why.

The rule: the run pinned for the matrix (``harness baseline pin RUN``), else the latest
complete run of the same matrix, started before this one, with the same cells and at
least as many guest boots in every cell as this run has. An interrupted night, a ``-k``
subset, a ``--boots 1`` try or an adaptive run that stopped cells early is passed over,
and the reason says which runs were passed over and why. Pure: ``choose_baseline``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.history.runs import RunStatus, load_status

if TYPE_CHECKING:
    from harness.store import Store

MAX_PASSED_OVER = 5  # runs named in the reason; the others are counted


@dataclass(frozen=True)
class BaselineChoice:
    run_id: str | None  # None: nothing to compare with
    reason: str  # one sentence for every report
    pinned: bool = False
    passed_over: tuple[tuple[str, str], ...] = ()  # (run id, why not), newest first


def unsuitable(candidate: RunStatus, current: RunStatus) -> str | None:
    """Why ``candidate`` cannot be ``current``'s baseline (None: it can)."""
    if candidate.matrix != current.matrix:
        return f"another matrix ({candidate.matrix})"
    if not candidate.complete:
        return "not complete: " + candidate.why
    mine, theirs = set(current.guest_boots_by_cell), set(candidate.guest_boots_by_cell)
    if mine != theirs:
        return (f"other cells ({len(theirs & mine)} of this run's {len(mine)} in common, "
                f"{len(theirs - mine)} more)")
    for cid, n in current.guest_boots_by_cell.items():
        if candidate.guest_boots_by_cell[cid] < n:
            return (f"fewer boots: {candidate.guest_boots_by_cell[cid]} < {n} guest boots "
                    f"in {cid}")
    return None


def choose_baseline(current: RunStatus, earlier: Iterable[RunStatus],
                    pinned: RunStatus | None = None) -> BaselineChoice:
    """``earlier``: runs of the matrix started before ``current``, newest first (read
    lazily: the first suitable one ends the search)."""
    if pinned is not None and pinned.id != current.id:
        why = unsuitable(pinned, current)
        note = f" (note: {why})" if why else ""
        return BaselineChoice(pinned.id, f"run {pinned.id}, pinned as the baseline of "
                              f"{current.matrix} (harness baseline pin){note}", pinned=True)
    passed: list[tuple[str, str]] = []
    for cand in earlier:
        if cand.id == current.id:
            continue
        why = unsuitable(cand, current)
        if why is None:
            return BaselineChoice(cand.id, _reason(cand, current, passed),
                                  passed_over=tuple(passed))
        passed.append((cand.id, why))
    text = (f"no earlier complete run of {current.matrix} with the same "
            f"{current.cells} cells and at least as many boots per cell")
    return BaselineChoice(None, text + _passed_text(passed) + ".", passed_over=tuple(passed))


def _passed_text(passed: Sequence[tuple[str, str]]) -> str:
    if not passed:
        return ""
    shown = "; ".join(f"{rid} ({why})" for rid, why in passed[:MAX_PASSED_OVER])
    more = len(passed) - MAX_PASSED_OVER
    return f"; passed over: {shown}" + (f" and {more} more" if more > 0 else "")


def _reason(base: RunStatus, current: RunStatus, passed: Sequence[tuple[str, str]]) -> str:
    least = min(base.guest_boots_by_cell.values(), default=0)
    return (f"run {base.id}, the latest complete run of {current.matrix} before this one "
            f"with the same {current.cells} cells and at least as many boots per cell "
            f"({least} or more guest boots each){_passed_text(passed)}.")


def find_baseline(store: Store, run_id: str) -> BaselineChoice:
    """The baseline of recorded run ``run_id`` in ``store`` (a run of the same matrix on
    the same lab: one database may hold several labs' runs)."""
    current = load_status(store, run_id)
    runs = store.list_runs(current.matrix, lab=store.get_run(run_id).lab or None)
    ref = (current.started, current.id)
    earlier_ids = [r.id for r in runs if (r.started, r.id) < ref]
    pin = store.pinned_baseline(current.matrix)
    pinned = load_status(store, pin) if pin is not None else None
    if pinned is not None and (pinned.started, pinned.id) >= ref:
        pinned = None  # a pin later than this run is not its baseline
    earlier = (load_status(store, rid) for rid in reversed(earlier_ids))
    return choose_baseline(current, earlier, pinned)
