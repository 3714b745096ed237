"""``harness classify FILE... [--expected-cpus N] [--online LIST] [--json]``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from harness.classify import Classification, classify_lines, parse_cpu_list
from harness.classify.render import summary, to_dict

# a "line" longer than this (a log without newlines) is read in pieces: memory stays bounded
READ_LIMIT = 1 << 20


def _lines(stream: IO[bytes]) -> Iterator[str]:
    """Lines split on b"\\n" only (not on a bare CR), decoded leniently, streaming."""
    while raw := stream.readline(READ_LIMIT):
        yield raw.decode("utf-8", errors="replace")


def _online(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_cpu_list(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--expected-cpus", type=click.IntRange(min=1, max=65536), default=None, metavar="N",
              help="vCPU count the domain was defined with (cross-check).")
@click.option("--online", callback=_online, default=None, metavar="LIST",
              help="The guest's /sys/devices/system/cpu/online, e.g. 0-2,4-7 (cross-check).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: one object per file, a list when several files.")
def classify(files: tuple[str, ...], expected_cpus: int | None, online: str | None,
             as_json: bool) -> None:
    """Classify kernel output (dmesg, serial console, a pasted log) in FILE ('-': stdin).

    Prints the verdict (ok, vcpu_offline, boot_failure), offline CPUs, PSCI errors, the
    panic reason and the normalized failure signatures. Exit status 0 whatever the verdict.
    """
    for f in files:
        if f != "-" and not Path(f).is_file():
            what = "is a directory" if Path(f).is_dir() else "does not exist"
            raise click.BadParameter(f"{f} {what}", param_hint="FILE")
    results: list[tuple[str, Classification]] = []
    for f in files:
        if f == "-":
            c = classify_lines(_lines(sys.stdin.buffer), expected_cpus=expected_cpus,
                               online=online)
            results.append(("-", c))
            continue
        try:
            with open(f, "rb") as stream:
                c = classify_lines(_lines(stream), expected_cpus=expected_cpus, online=online)
        except OSError as exc:
            raise click.FileError(f, hint=exc.strerror or str(exc)) from None
        results.append((f, c))
    if as_json:
        objs = [to_dict(c, name) for name, c in results]
        click.echo(json.dumps(objs[0] if len(objs) == 1 else objs, indent=2))
        return
    click.echo("\n\n".join(summary(c, name) for name, c in results))
