"""``harness report RUN_ID [--format html,junit,md,json] [--db PATH] [--out DIR]``."""

from __future__ import annotations

from pathlib import Path

import click

from harness.report.write import (
    EXTRA_FORMATS,
    FORMATS,
    find_database,
    parse_formats,
    write_reports,
)
from harness.store import Store


@click.command()
@click.argument("run_id")
@click.option("--format", "formats", default=",".join(FORMATS), show_default=True,
              help=f"Comma-separated: {', '.join(FORMATS + EXTRA_FORMATS)} (all: the "
                   "default four; kcidb: a KCIDB v5 document, kcidb.json).")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the reports/*.db that holds RUN_ID).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the reports (default: the run's artifacts folder).")
@click.option("--previous", "previous", default=None, metavar="RUN_ID",
              help="Compare with this run instead of the latest earlier one.")
@click.option("--no-previous", is_flag=True, help="Leave out the previous-run section.")
@click.option("--kcidb-origin", default="vmbh", show_default=True,
              help="KCIDB: the origin (CI system name, a-z 0-9 _) that prefixes every id.")
@click.option("--base-url", default=None, metavar="URL",
              help="KCIDB: where the run folder is served, to link boots' logs (log_url).")
@click.option("--known-issues", "known_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Known issues (default: known-issues.yaml beside the run's matrix file).")
def report(run_id: str, formats: str, db: str | None, out_dir: Path | None,
           previous: str | None, no_previous: bool, kcidb_origin: str,
           base_url: str | None, known_file: Path | None) -> None:
    """Write the reports of the recorded run RUN_ID."""
    from harness.knownissues import find_known_issues
    from harness.report.kcidb import check_origin

    fmts = parse_formats(formats)
    kcidb = {"origin": check_origin(kcidb_origin), "base_url": base_url}
    path = find_database([run_id], db)
    prev: str | bool = False if no_previous else (previous or True)
    with Store(path, create=False) as store:
        known = find_known_issues(known_file, [store.get_run(run_id).matrix_file])
        written = write_reports(store, run_id, fmts, out_dir, previous=prev, kcidb=kcidb,
                                known=known)
    for fmt, p in written.items():
        click.echo(f"{fmt:5} {p}")
