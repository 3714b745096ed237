"""``harness runs [MATRIX] [--lab LAB] [--db FILE|URL] [--json]``: every recorded run,
complete or not; one database may hold several labs' runs."""

from __future__ import annotations

import json

import click

from harness.history.runs import load_statuses
from harness.report.build import iso
from harness.report.write import find_database
from harness.store import Store, describe


@click.command()
@click.argument("matrix", required=False)
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the reports/*.db that holds MATRIX's runs).")
@click.option("--lab", help="Only the runs of this lab (one database may hold several).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(matrix: str | None, db: str | None, lab: str | None, as_json: bool) -> None:
    """Every run (of MATRIX, a matrix name): start, end, status, complete or not and why
    (interrupted, hosts set aside, cells unfinished), boots and verdict counts."""
    path = find_database([], db, matrix=matrix)
    with Store(path, create=False) as store:
        if matrix is not None and not store.list_runs(matrix):
            known = sorted({r.matrix for r in store.list_runs()})
            from harness.errors import ConfigError

            raise ConfigError(f"no run of matrix {matrix!r} in {describe(path)}; matrices "
                              f"there: {', '.join(known) or 'none'}")
        statuses = load_statuses(store, matrix, lab=lab)
        labs = {r.id: r.lab for r in store.list_runs(matrix, lab=lab)}
        pin = {m: store.pinned_baseline(m) for m in {s.matrix for s in statuses}}
    if as_json:
        click.echo(json.dumps({"database": describe(path), "runs": [
            {**s.as_dict(), "lab": labs.get(s.id, ""),
             "pinned_baseline": pin.get(s.matrix) == s.id}
            for s in statuses]}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"runs in {describe(path)}", title_justify="left")
    for col in ("run", "lab", "matrix", "started", "finished", "status", "complete", "boots",
                "fail", "undecided", "pass"):
        t.add_column(col, justify="right" if col in ("boots", "fail", "undecided", "pass")
                     else "left", no_wrap=col == "run")
    for s in statuses:
        mark = " (pinned baseline)" if pin.get(s.matrix) == s.id else ""
        t.add_row(s.id + mark, labs.get(s.id) or "-", s.matrix, iso(s.started) or "",
                  iso(s.finished) or "-", s.status,
                  "yes" if s.complete else f"[yellow]no: {s.why}[/]",
                  f"{s.boots}/{s.planned}", str(s.verdicts.get("fail", 0)),
                  str(s.verdicts.get("undecided", 0)),
                  str(s.verdicts.get("pass", 0) + s.verdicts.get("clean", 0)))
    Console(width=200).print(t)
