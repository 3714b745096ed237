"""One night's digest: what is new against the baseline, what is known, what recovered.

Built (pure) from issue 18's per-cell regression model (``harness.history.Regressions``),
the known issues (``harness.knownissues``) and the run's completeness:

- **new regressions**: cells the regression rule flags whose signatures are not all
  covered by an open known issue (a fixed issue's signature seen again counts as new);
- **known regressions**: flagged cells every signature of which is known (listed with
  their bugs, no alarm);
- **new signatures**: titles never seen anywhere in the baseline run, not known;
- **recoveries**: cells that went from fail to pass;
- **still failing**: counts only (known and not);
- **incomplete**: hosts set aside, cells unfinished, why the night is not complete.

``Digest.alarm`` (new regressions or new signatures) is what the nightly exit status and
the notifications react to; ``Digest.worth_sending`` adds recoveries and incomplete
nights, so a night with nothing new sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.history import Regressions, RunStatus
    from harness.knownissues import KnownIssues


@dataclass(frozen=True)
class Known:
    id: str
    bug: str
    state: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "bug": self.bug, "state": self.state}


@dataclass(frozen=True)
class Item:
    """One cell of the digest."""

    cell_id: str
    reasons: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()  # the cell's signatures now
    known: tuple[Known, ...] = ()  # open issues covering them
    reopened: tuple[Known, ...] = ()  # fixed issues whose signature is back

    def as_dict(self) -> dict[str, Any]:
        return {"cell": self.cell_id, "reasons": list(self.reasons),
                "signatures": list(self.signatures),
                "known": [k.as_dict() for k in self.known],
                "reopened": [k.as_dict() for k in self.reopened]}


@dataclass(frozen=True)
class NewSignature:
    title: str
    cells: tuple[str, ...]
    boots: int
    reopened: tuple[Known, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"title": self.title, "cells": list(self.cells), "boots": self.boots,
                "reopened": [k.as_dict() for k in self.reopened]}


@dataclass(frozen=True)
class Digest:
    matrix: str
    run_id: str
    baseline_id: str | None
    baseline_reason: str
    new_regressions: tuple[Item, ...] = ()
    known_regressions: tuple[Item, ...] = ()
    new_signatures: tuple[NewSignature, ...] = ()
    recoveries: tuple[Item, ...] = ()
    still_failing: int = 0
    still_failing_known: int = 0  # of still_failing, cells whose signatures are all known
    failing: int = 0  # cells failing tonight, new or not
    incomplete: tuple[str, ...] = ()  # why the night is not complete
    links: tuple[tuple[str, str], ...] = ()  # (label, url)
    known_file: str | None = None

    @property
    def alarm(self) -> bool:
        """Something new broke: the nightly exits 1 and the team is told."""
        return bool(self.new_regressions or self.new_signatures)

    @property
    def worth_sending(self) -> bool:
        return self.alarm or bool(self.recoveries) or bool(self.incomplete)

    def subject(self) -> str:
        parts = []
        if self.new_regressions:
            parts.append(_n(len(self.new_regressions), "new regression"))
        if self.new_signatures:
            parts.append(_n(len(self.new_signatures), "new signature"))
        if self.recoveries:
            parts.append(_n(len(self.recoveries), "recovery", "recoveries"))
        if self.incomplete:
            parts.append("incomplete")
        if not parts:
            parts.append("nothing new")
        return f"[{self.matrix}] {', '.join(parts)} ({self.run_id})"

    def text(self) -> str:
        """The digest as plain text (the e-mail body)."""
        out = [self.subject(), ""]
        base = self.baseline_id or "none"
        out.append(f"Compared with {base}: {self.baseline_reason}")
        out.append("")
        if self.new_regressions:
            out.append(f"NEW REGRESSIONS ({len(self.new_regressions)}):")
            out += _items(self.new_regressions)
        if self.new_signatures:
            out.append(f"NEW SIGNATURES ({len(self.new_signatures)}):")
            for s in self.new_signatures:
                re_ = "".join(f" (reopens {k.bug})" for k in s.reopened)
                out.append(f"  - {s.title}: {s.boots} boots in {', '.join(s.cells)}{re_}")
        if self.recoveries:
            out.append(f"RECOVERIES ({len(self.recoveries)}):")
            out += _items(self.recoveries)
        if self.known_regressions:
            out.append(f"Known regressions ({len(self.known_regressions)}, no alarm):")
            out += _items(self.known_regressions)
        out.append(f"Still failing: {self.still_failing} cells "
                   f"({self.still_failing_known} with known issues only); "
                   f"{self.failing} failing tonight in all.")
        if self.incomplete:
            out.append("INCOMPLETE NIGHT: " + "; ".join(self.incomplete))
        if self.links:
            out.append("")
            out += [f"{label}: {url}" for label, url in self.links]
        return "\n".join(out) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "matrix": self.matrix, "run": self.run_id, "baseline": self.baseline_id,
            "baseline_reason": self.baseline_reason, "alarm": self.alarm,
            "subject": self.subject(),
            "new_regressions": [i.as_dict() for i in self.new_regressions],
            "known_regressions": [i.as_dict() for i in self.known_regressions],
            "new_signatures": [s.as_dict() for s in self.new_signatures],
            "recoveries": [i.as_dict() for i in self.recoveries],
            "still_failing": self.still_failing,
            "still_failing_known": self.still_failing_known, "failing": self.failing,
            "incomplete": list(self.incomplete),
            "links": [{"label": a, "url": b} for a, b in self.links],
            "known_issues_file": self.known_file,
        }


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _items(items: Sequence[Item]) -> list[str]:
    out = []
    for i in items:
        out.append(f"  - {i.cell_id}: " + ("; ".join(i.reasons) or "-"))
        for k in i.known:
            out.append(f"      known: {k.id} {k.bug} ({k.state})")
        for k in i.reopened:
            out.append(f"      seen again after fix: {k.id} {k.bug}")
    return out


@dataclass(frozen=True)
class CellFacts:
    """What the digest needs of a cell beyond the regression rule."""

    host: str
    signatures: tuple[tuple[str, int], ...] = ()  # (title, boots) tonight


@dataclass(frozen=True)
class DigestInput:
    """Everything ``build_digest`` reads; ``from_store`` fills it from a recorded run."""

    regressions: Regressions
    cells: Mapping[str, CellFacts]
    baseline_titles: frozenset[str] = frozenset()  # every signature of the baseline run
    status: RunStatus | None = None
    links: tuple[tuple[str, str], ...] = field(default=())


def _known(ks: Sequence[Any]) -> tuple[Known, ...]:
    return tuple(dict.fromkeys(Known(k.id, k.bug, k.state) for k in ks))


def build_digest(inp: DigestInput, known: KnownIssues) -> Digest:
    reg = inp.regressions

    def facts(cell_id: str) -> CellFacts:
        return inp.cells.get(cell_id, CellFacts(""))

    def classify(cell_id: str, reasons: tuple[str, ...]) -> tuple[Item, bool]:
        f = facts(cell_id)
        titles = tuple(t for t, _ in f.signatures)
        k = [x for t in titles for x in known.known(t, cell_id, f.host)]
        r = [x for t in titles for x in known.reopened(t, cell_id, f.host)]
        all_known = bool(titles) and all(known.known(t, cell_id, f.host) for t in titles)
        return Item(cell_id, reasons, titles, _known(k), _known(r)), all_known

    new: list[Item] = []
    known_regs: list[Item] = []
    for c in reg.new_regressions:
        item, all_known = classify(c.cell_id, c.reasons)
        (known_regs if all_known else new).append(item)
    still, still_known = 0, 0
    for c in reg.still_failing:
        still += 1
        still_known += classify(c.cell_id, ())[1]
    recoveries = [classify(c.cell_id, c.reasons)[0] for c in reg.recoveries]
    # signatures never seen anywhere in the baseline run, and not known where they show
    sig_cells: dict[str, list[str]] = {}
    sig_boots: dict[str, int] = {}
    reopened: dict[str, list[Any]] = {}
    if reg.baseline_id is not None:
        for cell_id, f in inp.cells.items():
            for title, n in f.signatures:
                if title in inp.baseline_titles or known.known(title, cell_id, f.host):
                    continue
                sig_cells.setdefault(title, []).append(cell_id)
                sig_boots[title] = sig_boots.get(title, 0) + n
                reopened.setdefault(title, []).extend(known.reopened(title, cell_id, f.host))
    new_sigs = tuple(NewSignature(t, tuple(sorted(sig_cells[t])), sig_boots[t],
                                  _known(reopened[t])) for t in sorted(sig_cells))
    st = inp.status
    incomplete = tuple(st.reasons) if st is not None and not st.complete else ()
    failing = sum(1 for c in reg.cells if c.verdict_now == "fail")
    return Digest(reg.matrix, reg.run_id, reg.baseline_id, reg.baseline_reason, tuple(new),
                  tuple(known_regs), new_sigs, tuple(recoveries), still, still_known,
                  failing, incomplete, inp.links, known.file)


def from_store(store: Any, run_id: str, *, base_url: str | None = None,
               alpha: float = 0.05) -> DigestInput:
    """The digest's input for recorded run ``run_id``: its baseline by issue 18's rule,
    the regression model against it, each cell's host and signatures, completeness."""
    from harness.history import find_baseline, load_status, regressions, snapshots

    data = store.load_run(run_id, with_findings=False)
    choice = find_baseline(store, run_id)
    before = (store.load_run(choice.run_id, with_findings=False)
              if choice.run_id is not None else None)
    reg = regressions(snapshots(before) if before is not None else [], snapshots(data),
                      run_id=run_id, baseline_id=choice.run_id, baseline_reason=choice.reason,
                      matrix=data.run.matrix, alpha=alpha)
    cells = {cd.cell.id: CellFacts(cd.cell.host, tuple((s.title, s.count)
                                                       for s in cd.signatures))
             for cd in data.cells}
    titles = frozenset(s.title for s in before.signatures) if before is not None else frozenset()
    links: list[tuple[str, str]] = []
    if base_url:
        b = base_url.rstrip("/")
        links.append(("report", f"{b}/{run_id}/report.html"))
        if choice.run_id:
            links.append(("baseline report", f"{b}/{choice.run_id}/report.html"))
    return DigestInput(reg, cells, titles, load_status(store, run_id), tuple(links))
