"""``harness compare RUN_A RUN_B [--db PATH] [--json] [--fail-on-worse]``."""

from __future__ import annotations

import json

import click

from harness.history.regress import regressions, snapshots
from harness.report.compare import diff_runs
from harness.report.jsonreport import diff_dict
from harness.report.markdown import diff_lines, regression_lines
from harness.report.write import find_database
from harness.store import Store


@click.command()
@click.argument("run_a")
@click.argument("run_b")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the reports/*.db that holds both runs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--confidence", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.999),
              help="A change is flagged when its Holm-adjusted p is below 1 - confidence.")
@click.option("--fail-on-worse", is_flag=True,
              help="Exit with status 1 when a cell is a new regression: its verdict turned "
                   "from pass to fail, a rate is significantly higher, or a signature new "
                   "to the cell appears significantly often.")
def compare(run_a: str, run_b: str, db: str | None, as_json: bool, confidence: float,
            fail_on_worse: bool) -> int:
    """Compare run RUN_A (the older, the baseline) with RUN_B, cell by cell: new
    regressions, recoveries and still-failing cells; then two-sided rate changes."""
    path = find_database([run_a, run_b], db)
    with Store(path, create=False) as store:
        a = store.load_run(run_a, with_findings=False)
        b = store.load_run(run_b, with_findings=False)
    alpha = round(1 - confidence, 10)
    regs = regressions(snapshots(a), snapshots(b), run_id=run_b, baseline_id=run_a,
                       baseline_reason=f"Baseline: run {run_a} (given on the command line).",
                       matrix=b.run.matrix, alpha=alpha)
    diff = diff_runs(a, b, confidence)
    if as_json:
        click.echo(json.dumps({**diff_dict(diff), "regressions": regs.as_dict()}, indent=1))
    else:
        if a.run.matrix != b.run.matrix:
            click.echo(f"note: different matrices ({a.run.matrix} vs {b.run.matrix}); "
                       "cells are matched by id", err=True)
        lines = [*regression_lines(regs, heading="#"), *diff_lines(diff, heading="##")]
        click.echo("\n".join(lines).rstrip())
    return 1 if fail_on_worse and regs.alarm else 0
