"""``harness history MATRIX [--nights N] [--json] [--html PATH] [--db PATH]``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.errors import ConfigError
from harness.history.dashboard import conf, default_path, write_dashboard
from harness.history.nights import load_history
from harness.report.view import pct
from harness.report.write import find_database
from harness.store import Store

LETTER = {"fail": "F", "undecided": "U", "pass": "P", "clean": "C", "not_judged": "n"}


@click.command()
@click.argument("matrix")
@click.option("--nights", default=14, show_default=True, type=click.IntRange(min=1),
              help="The last N runs of the matrix.")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the reports/*.db with MATRIX's runs).")
@click.option("--lab", help="Only the runs of this lab (one database may hold several).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--html", "html", type=click.Path(path_type=Path, dir_okay=False),
              help="Dashboard file (default: <database folder>/<matrix>-history.html).")
@click.option("--no-html", is_flag=True, help="Do not write the dashboard.")
def history(matrix: str, nights: int, db: str | None, lab: str | None, as_json: bool,
            html: Path | None, no_html: bool) -> None:
    """MATRIX (a matrix name) over its last nights: per cell the verdict and rate each
    night and the first bad night (change-point test, Holm across cells); writes the
    static HTML dashboard."""
    path = find_database([], db, matrix=matrix)
    out = html or default_path(path, matrix)
    with Store(path, create=False) as store:
        if not store.list_runs(matrix, lab=lab):
            known = sorted({r.matrix for r in store.list_runs(lab=lab)})
            raise ConfigError(f"no run of matrix {matrix!r} in {store.location}; matrices "
                              f"there: {', '.join(known) or 'none'}")
        h = load_history(store, matrix, nights, out_dir=out.parent, lab=lab)
    if not no_html:
        write_dashboard(h, out)
    if as_json:
        doc = h.as_dict()
        doc["dashboard"] = None if no_html else str(out)
        click.echo(json.dumps(doc, indent=1))
        return
    for i, n in enumerate(h.nights):
        flag = "complete" if n.status.complete else "INCOMPLETE: " + n.status.why
        new = f"; new regressions: {', '.join(n.new_regressions)}" if n.new_regressions else ""
        click.echo(f"night {i + 1:>2} {n.run_id}  {flag}; baseline {n.baseline or 'none'}{new}")
    click.echo("")
    width = max((len(c.cell_id) for c in h.cells), default=4)
    for c in h.cells:
        strip = "".join("-" if x is None or x.n == 0 else LETTER.get(x.verdict, "?")
                        for x in c.nights)
        bad = (f"first bad: night {c.first_bad + 1} {h.first_bad_run(c)} "
               f"({conf(c.confidence)} confidence; {pct(c.before, 1)} -> {pct(c.after, 1)}, "
               f"p = {c.p_adjusted:.2g} Holm)" if c.first_bad is not None else "")
        click.echo(f"{c.cell_id:<{width}}  {strip}  {bad}".rstrip())
    if not no_html:
        click.echo(f"\ndashboard: {out}")
