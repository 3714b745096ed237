"""A short Markdown summary for mail and chat: verdicts, what failed, what changed."""

from __future__ import annotations

from pathlib import Path

from harness.history.regress import Regressions
from harness.report.view import (
    OUTCOME_LABELS,
    CellView,
    RunDiff,
    RunView,
    p_text,
    pct,
    rate_text,
    show_value,
)

MAX_ROWS = 25


def md_escape(text: object) -> str:
    """Text that stays inside one table cell and does not turn into markup."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    for ch in "`*_<>[]":
        s = s.replace(ch, "\\" + ch)
    return s


def _cell_rows(cells: list[CellView]) -> list[str]:
    rows = ["| cell | vCPU offline | boot failure | infra | verdict |",
            "|---|---|---|---:|---|"]
    for c in cells[:MAX_ROWS]:
        early = " (stopped early)" if c.stopped_early else ""
        rows.append(f"| {md_escape(c.id)} | {rate_text(c.vcpu_offline_rate)} | "
                    f"{rate_text(c.boot_failure_rate)} | {c.infra_error} | "
                    f"**{c.verdict}**{early} |")
    if len(cells) > MAX_ROWS:
        rows.append(f"| ... and {len(cells) - MAX_ROWS} more | | | | |")
    return rows


def diff_lines(d: RunDiff, *, heading: str = "##") -> list[str]:
    out = [f"{heading} Rate changes against run {md_escape(d.a_id)} (two-sided)", ""]
    if not (d.worse or d.better):
        out.append(f"No significant change in any cell's rates (exact test, Holm-adjusted, "
                   f"alpha {d.alpha}).")
    for name, changes in (("Worse", d.worse), ("Better", d.better)):
        if changes:
            out.append(f"**{name}** ({len(changes)}):")
            out.append("")
            for c in changes[:MAX_ROWS]:
                out.append(f"- {md_escape(c.cell_id)}: {OUTCOME_LABELS[c.outcome]} "
                           f"{rate_text(c.a)} -> {rate_text(c.b)} ({p_text(c.p_adjusted)})")
            if len(changes) > MAX_ROWS:
                out.append(f"- ... and {len(changes) - MAX_ROWS} more")
            out.append("")
    if d.only_in_a or d.only_in_b:
        out.append(f"Cells only in the previous run: {len(d.only_in_a)}; only in this run: "
                   f"{len(d.only_in_b)}.")
    return out


def completeness_lines(view: RunView) -> list[str]:
    st = view.completeness
    if st is None:
        return []
    if st.complete:
        return ["Complete: every cell has all its boots.", ""]
    out = [f"**INCOMPLETE run** ({md_escape(st.status)}): " + md_escape("; ".join(st.reasons))
           + ".", ""]
    for h, why in st.hosts_set_aside:
        out.append(f"- host {md_escape(h)} set aside: {md_escape(why)}")
    if st.unfinished:
        shown = ", ".join(f"{md_escape(c)} ({n}/{p})" for c, n, p in st.unfinished[:MAX_ROWS])
        more = len(st.unfinished) - MAX_ROWS
        out.append(f"- unfinished cells (guest boots/planned): {shown}"
                   + (f" and {more} more" if more > 0 else ""))
    if st.infra_by_host:
        out.append("- infrastructure errors per host: " + ", ".join(
            f"{md_escape(h)} {n}" for h, n in st.infra_by_host))
    return [*out, ""]


def regression_lines(r: Regressions, *, heading: str = "##") -> list[str]:
    """New regressions, recoveries and still-failing cells against the baseline."""
    out = [f"{heading} Against the previous run", "", md_escape(r.baseline_reason or
                                                                 f"Baseline: {r.baseline_id}"),
           ""]
    out.append(f"**{len(r.new_regressions)} new regressions, {len(r.recoveries)} recoveries, "
               f"{len(r.still_failing)} still failing**"
               + (f", {len(r.not_measured)} not measured" if r.not_measured else "")
               + f" (one-sided Fisher exact tests, Holm over the {r.family} of {r.tests} tests "
               f"that can be significant, alpha {r.alpha:g}).")
    out.append("")
    for title, cells in (("New regressions", r.new_regressions),
                         ("Recoveries", r.recoveries)):
        if cells:
            out += [f"**{title}:**", ""]
            out += [f"- {md_escape(c.cell_id)}: " + md_escape("; ".join(c.reasons))
                    for c in cells[:MAX_ROWS]]
            if len(cells) > MAX_ROWS:
                out.append(f"- ... and {len(cells) - MAX_ROWS} more")
            out.append("")
    if r.still_failing:
        out += [f"**Still failing** ({len(r.still_failing)}): " + ", ".join(
            md_escape(c.cell_id) for c in r.still_failing[:MAX_ROWS])
            + (" ..." if len(r.still_failing) > MAX_ROWS else ""), ""]
    return out


def to_markdown(view: RunView) -> str:
    counts = view.verdict_counts
    t = view.totals
    lines = [
        f"# {md_escape(view.matrix)}: run {md_escape(view.id)}",
        "",
        f"{view.started} to {view.finished or '(not finished)'}: {len(view.cells)} cells, "
        f"{t['boots']} boots ({t['ok']} ok, {t['vcpu_offline']} vCPU offline, "
        f"{t['boot_failure']} boot failure, {t['infra_error']} infrastructure error).",
        "",
        f"**{counts['fail']} fail, {counts['undecided']} undecided, {counts['pass']} pass, "
        f"{counts['clean']} clean**"
        + (f" ({counts['not_judged']} not judged)" if counts.get("not_judged") else "")
        + f" (intervals at {pct(view.confidence)}; infrastructure errors are not in the rates;"
        " clean: no failure seen, no rate ruled out).",
        "",
    ]
    lines += completeness_lines(view)
    early = [c for c in view.cells if c.stopped_early]
    if early:
        lines += [f"{len(early)} cells stopped early (adaptive): their intervals are "
                  "confidence sequences, valid at the stop.", ""]
    failed = [c for c in view.cells if c.verdict == "fail"]
    undecided = [c for c in view.cells if c.verdict == "undecided"]
    tables = [("Failing cells", failed), ("Undecided cells", undecided),
              ("Cells stopped early", [c for c in early if c.verdict != "fail"
                                       and c.verdict != "undecided"])]
    for title, cells in tables:
        if cells:
            lines += [f"## {title}", "", *_cell_rows(cells), ""]
    sigs = view.signature_totals()
    if sigs:
        lines += ["## Signatures", ""]
        lines += [f"- {s.count} x {md_escape(s.title)}"
                  + (f" (known: {md_escape(', '.join(s.known))})" if s.known else "")
                  for s in sigs[:MAX_ROWS]]
        lines.append("")
    sig_cmp = [c for c in view.comparisons if c.significant]
    if view.comparisons:
        lines += ["## Comparisons", ""]
        if not sig_cmp:
            lines.append(f"None of the {len(view.comparisons)} comparisons is significant "
                         "after Holm correction.")
        for c in sig_cmp[:MAX_ROWS]:
            lines.append(f"- {md_escape(c.title)}: {rate_text(c.a)} vs {rate_text(c.b)}, "
                         f"difference {pct(c.difference.value)} [{pct(c.difference.low)}, "
                         f"{pct(c.difference.high)}], {c.test} {p_text(c.p_adjusted)} (Holm)")
        lines.append("")
    if view.regressions is not None:
        lines += regression_lines(view.regressions)
    versioned = [cv for cv in view.cells if cv.versions]
    if versioned:
        lines += ["## Versions", ""]
        for cv in versioned[:MAX_ROWS]:
            lines.append(f"- {md_escape(cv.id)}: " + "; ".join(
                f"{md_escape(k)} {md_escape(v)}" for k, v in cv.versions))
        if len(versioned) > MAX_ROWS:
            lines.append(f"- ... and {len(versioned) - MAX_ROWS} more")
        lines.append("")
    if view.previous:
        lines += diff_lines(view.previous, heading="###")
    elif view.previous_note:
        lines += ["## Previous run", "", view.previous_note, ""]
    if any(h.facts or h.error for h in view.hosts):
        lines += ["## Hosts", "", "| host | attributes | facts | from |", "|---|---|---|---|"]
        for h in view.hosts:
            attrs = ", ".join(f"{k}={show_value(v)}" for k, v in h.attrs)
            facts = ", ".join(f"{k}={'unknown' if v is None else show_value(v)}"
                              for k, v in h.facts) + (f" ({h.error})" if h.error else "")
            lines.append(f"| {md_escape(h.name)} | {md_escape(attrs)} | {md_escape(facts)} "
                         f"| {md_escape(h.source or 'not gathered')} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(view: RunView, path: Path) -> Path:
    path.write_text(to_markdown(view), encoding="utf-8")
    return path
