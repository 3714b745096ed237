"""``harness report RUN_ID [--format html,junit,md,json] [--db PATH] [--out DIR]``."""

from __future__ import annotations

from pathlib import Path

import click

from harness.report.write import FORMATS, find_database, parse_formats, write_reports
from harness.store import Store


@click.command()
@click.argument("run_id")
@click.option("--format", "formats", default=",".join(FORMATS), show_default=True,
              help="Comma-separated: html, junit, md, json (or all).")
@click.option("--db", type=click.Path(path_type=Path, dir_okay=False),
              help="Results database (default: the reports/*.db that holds RUN_ID).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the reports (default: the run's artifacts folder).")
@click.option("--previous", "previous", default=None, metavar="RUN_ID",
              help="Compare with this run instead of the latest earlier one.")
@click.option("--no-previous", is_flag=True, help="Leave out the previous-run section.")
def report(run_id: str, formats: str, db: Path | None, out_dir: Path | None,
           previous: str | None, no_previous: bool) -> None:
    """Write the reports of the recorded run RUN_ID."""
    fmts = parse_formats(formats)
    path = find_database([run_id], db)
    prev: str | bool = False if no_previous else (previous or True)
    with Store(path, create=False) as store:
        written = write_reports(store, run_id, fmts, out_dir, previous=prev)
    for fmt, p in written.items():
        click.echo(f"{fmt:5} {p}")
