"""``harness baseline pin RUN | unpin MATRIX | show RUN``: the run a matrix's reports
compare with."""

from __future__ import annotations

import json

import click

from harness.history.baseline import find_baseline
from harness.report.write import find_database
from harness.store import Store

DB = click.option("--db", metavar="FILE|URL",
                  help="Results database: a file or postgresql:// URL (default: $VMBH_DB, "
                       "else the reports/*.db that holds the run).")


@click.group()
def baseline() -> None:
    """Pin, unpin or show the baseline run of a matrix."""


@baseline.command()
@click.argument("run_id")
@DB
def pin(run_id: str, db: str | None) -> None:
    """Compare every later run of RUN_ID's matrix with RUN_ID until unpinned."""
    with Store(find_database([run_id], db), create=False) as store:
        info = store.pin_baseline(run_id)
    click.echo(f"baseline of {info.matrix}: {run_id} (pinned)")


@baseline.command()
@click.argument("matrix")
@DB
def unpin(matrix: str, db: str | None) -> None:
    """Back to the automatic baseline (the latest complete comparable run) for MATRIX."""
    with Store(find_database([], db, matrix=matrix), create=False) as store:
        was = store.unpin_baseline(matrix)
    click.echo(f"baseline of {matrix}: automatic" + (f" (was pinned to {was})" if was else
                                                     " (nothing was pinned)"))


@baseline.command()
@click.argument("run_id")
@DB
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, db: str | None, as_json: bool) -> None:
    """Which run RUN_ID is compared with, and why."""
    with Store(find_database([run_id], db), create=False) as store:
        choice = find_baseline(store, run_id)
    if as_json:
        click.echo(json.dumps({"run": run_id, "baseline": choice.run_id,
                               "pinned": choice.pinned, "reason": choice.reason,
                               "passed_over": [{"run": r, "why": w}
                                               for r, w in choice.passed_over]}, indent=1))
    else:
        click.echo(f"baseline: {choice.run_id or 'none'}\nwhy: {choice.reason}")
