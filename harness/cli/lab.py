"""``harness lab setup`` and ``harness lab doctor``: the local lab on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import click

from harness.lab import doctor as doc
from harness.lab.paths import ENV, Layout, cache_dir


def _layout(cache: Path | None) -> Layout:
    return Layout((cache or cache_dir()).expanduser().absolute())


@click.group()
def lab() -> None:
    """Set up and check the local lab (real aarch64 guests under QEMU on this machine)."""


@lab.command()
@click.option("--cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=f"Cache folder (default: ${ENV} or ~/.cache/vm-boot-harness).")
@click.option("--refresh", is_flag=True,
              help="Look for newer kernels and rebuild the guests even if all is in place.")
@click.option("--no-install", is_flag=True,
              help="Never install Debian packages or create users; only report them.")
@click.option("--distro", is_flag=True,
              help="Also build the Debian 12 arm64 distro images (UEFI, systemd, OpenSSH, "
                   "DHCP) the rehearsal lab boots; tens of minutes the first time, cached.")
def setup(cache: Path | None, refresh: bool, no_install: bool, distro: bool) -> None:
    """Install or check what the local lab needs and build its guests (idempotent)."""
    from harness.lab.debs import SetupError
    from harness.lab.setup import setup as run_setup

    lay = _layout(cache)
    if cache is not None:
        os.environ[ENV] = str(lay.root)
    try:
        res = run_setup(lay, refresh=refresh, install=not no_install,
                        say=lambda s: click.echo(f"  {s}", err=True))
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None
    state = "already in place" if res.reused else f"built {len(res.built)} file(s)"
    click.echo(f"local lab {state} in {lay.root} ({res.seconds:.1f}s)")
    for flavour, g in sorted(res.manifest.get("guests", {}).items()):
        click.echo(f"  {flavour:12s} {g['release']:24s} {g['kernel']}")
    click.echo(f"  libvirt      {res.manifest.get('embed_uri', '')}")
    if distro:
        from harness.lab.distro import build as build_distro
        from harness.lab.distro import distro_layout

        try:
            man = build_distro(lay, install=not no_install,
                               say=lambda s: click.echo(f"  {s}", err=True))
        except SetupError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"distro images in {distro_layout(lay).root} (cold build took "
                   f"{man.get('build_seconds', 0):.0f}s on {man.get('built_at', '?')})")
        for flavour, img in sorted(man.get("images", {}).items()):
            click.echo(f"  {flavour:12s} {img['release']:24s} {img['path']}")
    problems = doc.failing(doc.stall_checks())
    for c in problems:
        click.echo(f"  note: {c.name} missing ({c.needed_for} will not work): {c.fix}",
                   err=True)
    click.echo("next: harness run matrices/local-demo.yaml")


@lab.command()
@click.option("--cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=f"Cache folder (default: ${ENV} or ~/.cache/vm-boot-harness).")
def doctor(cache: Path | None) -> None:
    """List what the local lab needs, what is missing, and the command that fixes it.
    Exits with 1 when something is missing."""
    checks = doc.all_checks(_layout(cache))
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = (click.style("ok  ", fg="green") if c.ok else
                click.style("opt ", fg="yellow") if c.optional else click.style("MISS", fg="red"))
        click.echo(f"{mark} {c.name:{width}s}  {c.detail}")
        if not c.ok:
            click.echo(f"     {'':{width}s}  needed for {c.needed_for}; fix: {c.fix}")
    bad = doc.failing(checks, lambda c: not c.optional)
    if bad:
        raise click.exceptions.Exit(1)
    click.echo("everything the local lab needs is in place")


@lab.command()
@click.option("--cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=f"Cache folder (default: ${ENV} or ~/.cache/vm-boot-harness).")
def up(cache: Path | None) -> None:
    """Start the rehearsal host: a remote libvirt host on this machine (network
    namespace, its own sshd and libvirtd, a DHCP guest network), reached only over
    qemu+ssh (see docs/lab-rehearsal.md)."""
    from harness.lab import rehearsal

    try:
        facts = rehearsal.up(_layout(cache), say=lambda s: click.echo(f"  {s}", err=True))
    except rehearsal.RehearsalError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("rehearsal host up")
    for k, v in facts.items():
        click.echo(f"  {k:12s} {v}")
    click.echo("next: harness run matrices/rehearsal.yaml; stop it with harness lab down")


@lab.command()
@click.option("--cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help=f"Cache folder (default: ${ENV} or ~/.cache/vm-boot-harness).")
def down(cache: Path | None) -> None:
    """Stop the rehearsal host: every process, domain, network and namespace it made."""
    from harness.lab import rehearsal

    done = rehearsal.down(_layout(cache), say=lambda s: click.echo(f"  {s}", err=True))
    click.echo("rehearsal host down" + (f" (removed: {', '.join(done)})" if done else
                                         " (nothing was running)"))
