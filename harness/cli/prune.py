"""``harness prune --keep-nights N --keep-failing M [--matrix NAME] [--db PATH]``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.command()
@click.option("--keep-nights", type=click.IntRange(min=0), default=7, show_default=True,
              help="Newest nights (runs) of each matrix that keep every boot's evidence.")
@click.option("--keep-failing", type=click.IntRange(min=0), default=30, show_default=True,
              help="Newest nights that keep the failing boots' evidence (>= --keep-nights).")
@click.option("--matrix", "matrices", multiple=True, metavar="NAME",
              help="Only this matrix (repeat for several; default: every matrix).")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the one reports/*.db).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per night.")
def prune(keep_nights: int, keep_failing: int, matrices: tuple[str, ...], db: str | None,
          dry_run: bool, as_json: bool) -> None:
    """Remove old boots' console, dmesg and host evidence; failing boots' are kept longer.

    The database keeps every boot's outcome, findings and signatures, so history,
    comparisons and reports stay whole; the run's reports are never removed."""
    from harness.errors import ConfigError
    from harness.retention import Policy
    from harness.retention import prune as do_prune
    from harness.store import Store

    policy = Policy(keep_nights, keep_failing)
    from harness.store import DbTarget, env_target, parse_target

    target: DbTarget | None = parse_target(db) if db is not None else env_target()
    if target is None:
        found = sorted(Path("reports").glob("*.db"))
        if len(found) != 1:
            raise ConfigError("pass --db PATH (found " + (
                ", ".join(map(str, found)) if found else "no reports/*.db") + ")")
        target = found[0]
    with Store(target, create=False) as store:
        results = do_prune(store, policy, matrices=matrices, dry_run=dry_run)
    freed = 0
    for r in results:
        freed += r.bytes_before - r.bytes_after
        if as_json:
            click.echo(json.dumps(asdict(r), sort_keys=True))
        else:
            verb = "would remove" if dry_run else "removed"
            click.echo(f"{r.run_id} ({r.matrix}, night -{r.age}): {r.level:12} "
                       f"{verb} {r.files_removed} files of {r.boots_pruned} boots; "
                       f"{_mb(r.bytes_before)} -> {_mb(r.bytes_after)}")
    if not as_json:
        click.echo(f"{len(results)} nights; {_mb(freed)} freed" + (" (dry run)" if dry_run
                                                                     else ""))
