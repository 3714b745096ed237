"""A short Markdown summary for mail and chat: verdicts, what failed, what changed."""

from __future__ import annotations

from pathlib import Path

from harness.report.view import OUTCOME_LABELS, CellView, RunDiff, RunView, p_text, pct, rate_text

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
        rows.append(f"| {md_escape(c.id)} | {rate_text(c.vcpu_offline_rate)} | "
                    f"{rate_text(c.boot_failure_rate)} | {c.infra_error} | **{c.verdict}** |")
    if len(cells) > MAX_ROWS:
        rows.append(f"| ... and {len(cells) - MAX_ROWS} more | | | | |")
    return rows


def diff_lines(d: RunDiff, *, heading: str = "##") -> list[str]:
    out = [f"{heading} Against run {md_escape(d.a_id)}", ""]
    if not (d.worse or d.better or d.flagged_signatures):
        out.append(f"No significant change (exact test, Holm-adjusted, alpha {d.alpha}); "
                   "no new signature.")
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
    sigs = d.flagged_signatures
    if sigs:
        out.append("**Signatures:**")
        out.append("")
        for s in sigs[:MAX_ROWS]:
            tag = "NEW" if s.new else s.direction
            out.append(f"- [{tag}] {md_escape(s.title)}: {s.a_count}/{s.a_boots} -> "
                       f"{s.b_count}/{s.b_boots}"
                       + (f" ({p_text(s.p_adjusted)})" if s.significant else ""))
        out.append("")
    if d.only_in_a or d.only_in_b:
        out.append(f"Cells only in the previous run: {len(d.only_in_a)}; only in this run: "
                   f"{len(d.only_in_b)}.")
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
        f"**{counts['fail']} fail, {counts['undecided']} undecided, {counts['pass']} pass**"
        + (f" ({counts['not_judged']} not judged)" if counts.get("not_judged") else "")
        + f" (intervals at {pct(view.confidence)}; infrastructure errors are not in the rates).",
        "",
    ]
    failed = [c for c in view.cells if c.verdict == "fail"]
    undecided = [c for c in view.cells if c.verdict == "undecided"]
    for title, cells in (("Failing cells", failed), ("Undecided cells", undecided)):
        if cells:
            lines += [f"## {title}", "", *_cell_rows(cells), ""]
    sigs = view.signature_totals()
    if sigs:
        lines += ["## Signatures", ""]
        lines += [f"- {s.count} x {md_escape(s.title)}" for s in sigs[:MAX_ROWS]]
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
    if view.previous:
        lines += diff_lines(view.previous)
    elif view.previous_note:
        lines += ["## Previous run", "", view.previous_note, ""]
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(view: RunView, path: Path) -> Path:
    path.write_text(to_markdown(view), encoding="utf-8")
    return path
