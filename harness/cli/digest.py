"""``harness digest RUN_ID [--notify FILE] [--known-issues FILE] [--json]``: what is new
in a night against its baseline, sent to the team; the exit status is the nightly's."""

from __future__ import annotations

import json
from pathlib import Path

import click

EXIT_NEW = 1  # a new regression or a new signature (or any failing cell, if asked)
EXIT_UNDELIVERED = 3  # nothing new, but a notification could not be delivered


@click.command()
@click.argument("run_id")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the reports/*.db that holds RUN_ID).")
@click.option("--known-issues", "known_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Known issues (default: known-issues.yaml beside the run's matrix file).")
@click.option("--notify", "notify_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Send the digest as this file says (e-mail, webhook).")
@click.option("--base-url", default=None, metavar="URL",
              help="Where run folders are served, for links (default: the notify file's).")
@click.option("--fail-on-any-failing", is_flag=True,
              help="Exit 1 when any cell fails, new or known (default: only on news).")
@click.option("--json", "as_json", is_flag=True, help="Print the digest as JSON.")
@click.option("--no-write", is_flag=True,
              help="Do not write digest.txt and digest.json into the run's folder.")
def digest(run_id: str, db: str | None, known_file: Path | None, notify_file: Path | None,
           base_url: str | None, fail_on_any_failing: bool, as_json: bool,
           no_write: bool) -> int:
    """Compare the night RUN_ID with its baseline, mark known issues, send the digest.

    Exit status: 0 nothing new; 1 a new regression or signature (with
    --fail-on-any-failing: any failing cell); 3 nothing new but a notification failed."""
    from harness.knownissues import find_known_issues
    from harness.notify import build_digest, from_store, load_notify_config, notify
    from harness.report.write import find_database, run_folder
    from harness.store import Store

    cfg = load_notify_config(notify_file) if notify_file is not None else None
    path = find_database([run_id], db)
    with Store(path, create=False) as store:
        info = store.get_run(run_id)
        known = find_known_issues(known_file, [info.matrix_file])
        url = base_url or (cfg.base_url if cfg is not None else None)
        d = build_digest(from_store(store, run_id, base_url=url), known)
        folder = run_folder(store, info)
    if folder is not None and not no_write:
        (folder / "digest.txt").write_text(d.text(), encoding="utf-8")
        (folder / "digest.json").write_text(json.dumps(d.as_dict(), indent=1) + "\n",
                                            encoding="utf-8")
    click.echo(json.dumps(d.as_dict(), indent=1) if as_json else d.text(), nl=False)
    undelivered = False
    if cfg is not None:
        base = notify_file.parent if notify_file is not None else Path(".")
        sent = notify(d, cfg, base)
        if not sent:
            click.echo("notify: nothing new, nothing sent", err=True)
        for s in sent:
            click.echo(f"notify: {s.channel} {s.target}: {'sent' if s.ok else 'FAILED'}"
                       + (f" ({s.detail})" if s.detail else ""), err=True)
            undelivered |= not s.ok
    if d.alarm or (fail_on_any_failing and d.failing):
        return EXIT_NEW
    return EXIT_UNDELIVERED if undelivered else 0
