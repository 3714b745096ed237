"""``harness gc``: remove domains (and their per-boot files) left by runs that are dead.

A run is alive while its controller process exists (host name, kernel boot id, pid and
the pid's start time, all in each domain's ``<hb:boot>`` metadata). Domains made by
another controller are listed, not removed, unless ``--force``.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.errors import ConfigError, InfraError


@click.command()
@click.option("--uri", "uris", multiple=True, metavar="URI",
              help="libvirt URI to clean (repeat for several).")
@click.option("--lab", "lab_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Clean every host of this lab file (and their storage folders).")
@click.option("--storage", "storage", multiple=True, metavar="DIR",
              help="Also remove orphan per-boot files (hb-*) in this folder on the host.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--force", is_flag=True,
              help="Also remove domains made by another controller (it must be dead!).")
def gc(uris: tuple[str, ...], lab_file: Path | None, storage: tuple[str, ...], dry_run: bool,
       force: bool) -> None:
    """Remove hb-* domains and overlays whose run is no longer alive."""
    targets: dict[str, list[str]] = {u: list(storage) for u in uris}
    if lab_file is not None:
        from harness.inventory import load_lab

        lab = load_lab(lab_file)
        for host in lab.hosts.values():
            if host.is_sim:
                continue
            dirs = targets.setdefault(host.uri, list(storage))
            if host.storage_dir is not None and str(host.storage_dir) not in dirs:
                dirs.append(str(host.storage_dir))
    if not targets:
        raise ConfigError("say what to clean: --uri URI (repeatable) or --lab LAB_FILE")
    from harness.backend.gc import collect
    from harness.backend.libvirt import LibvirtBackend

    failed = 0
    verb = "would remove" if dry_run else "removed"
    for uri, dirs in targets.items():
        try:
            backend = LibvirtBackend(uri)
        except InfraError as exc:
            click.echo(f"{uri}: {exc}", err=True)
            failed += 1
            continue
        try:
            rep = collect(backend, dry_run=dry_run, force=force, storage=dirs)
        except InfraError as exc:
            click.echo(f"{uri}: {exc}", err=True)
            failed += 1
            continue
        finally:
            backend.close()
        click.echo(f"{uri}: {verb} {len(rep.removed)} domain(s), {len(rep.files)} file(s); "
                   f"{len(rep.alive)} of live runs kept")
        for name in rep.removed:
            click.echo(f"  {verb} {name}")
        for path in rep.files:
            click.echo(f"  {verb} {path}")
        for name in rep.foreign:
            click.echo(f"  kept {name}: made by another controller (--force removes it)")
        for err in rep.errors:
            click.echo(f"  error: {err}", err=True)
        failed += bool(rep.errors)
    if failed:
        raise SystemExit(1)
