"""``harness runs [MATRIX] [--db PATH] [--json]``: every recorded run, complete or not."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.history.runs import load_statuses
from harness.report.build import iso
from harness.report.write import find_database
from harness.store import Store


@click.command()
@click.argument("matrix", required=False)
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False),
              help="Results database (default: the reports/*.db that holds MATRIX's runs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def runs(matrix: str | None, db: Path | None, as_json: bool) -> None:
    """Every run (of MATRIX, a matrix name): start, end, status, complete or not and why
    (interrupted, hosts set aside, cells unfinished), boots and verdict counts."""
    path = find_database([], db, matrix=matrix)
    with Store(path, create=False) as store:
        if matrix is not None and not store.list_runs(matrix):
            known = sorted({r.matrix for r in store.list_runs()})
            from harness.errors import ConfigError

            raise ConfigError(f"no run of matrix {matrix!r} in {path}; matrices there: "
                              f"{', '.join(known) or 'none'}")
        statuses = load_statuses(store, matrix)
        pin = {m: store.pinned_baseline(m) for m in {s.matrix for s in statuses}}
    if as_json:
        click.echo(json.dumps({"database": str(path), "runs": [
            {**s.as_dict(), "pinned_baseline": pin.get(s.matrix) == s.id}
            for s in statuses]}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"runs in {path}", title_justify="left")
    for col in ("run", "matrix", "started", "finished", "status", "complete", "boots",
                "fail", "undecided", "pass"):
        t.add_column(col, justify="right" if col in ("boots", "fail", "undecided", "pass")
                     else "left", no_wrap=col == "run")
    for s in statuses:
        mark = " (pinned baseline)" if pin.get(s.matrix) == s.id else ""
        t.add_row(s.id + mark, s.matrix, iso(s.started) or "", iso(s.finished) or "-",
                  s.status, "yes" if s.complete else f"[yellow]no: {s.why}[/]",
                  f"{s.boots}/{s.planned}", str(s.verdicts.get("fail", 0)),
                  str(s.verdicts.get("undecided", 0)),
                  str(s.verdicts.get("pass", 0) + s.verdicts.get("clean", 0)))
    Console(width=200).print(t)
