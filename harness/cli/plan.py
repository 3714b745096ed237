"""``harness plan MATRIX [--json]``: the expanded cells."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from harness.cli import EXIT_HELP
from harness.matrix import load_matrix


@click.command(epilog=EXIT_HELP)
@click.argument("matrix", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plan(matrix: Path, as_json: bool) -> None:
    """Validate MATRIX (and its lab) and print the cells it expands to. Everything
    'harness run' checks before booting is checked here too (the lab's sim section, URIs,
    the results path); nothing is written."""
    m = load_matrix(matrix)
    if as_json:
        cells = []
        for c in m.cells:
            d = c.as_dict()
            attrs = d.pop("host_attrs")
            d.update({k: v for k, v in attrs.items() if k not in d})
            d["host_attrs"] = attrs
            cells.append(d)
        click.echo(json.dumps({"matrix": m.name, "lab": m.lab.name, "cells": cells,
                               "total_boots": m.total_boots}, indent=2))
        return
    table = Table(title=f"{m.name}: {len(m.cells)} cells, {m.total_boots} boots",
                  title_justify="left")
    extra = [a.name for a in m.spec.axes if a.name not in ("host", "guest", "vcpus")]
    attr_names = sorted({k for _, a in m.spec.host_attrs for k, _ in a})
    for col in ["cell", "host", *attr_names, "guest", "vcpus", *extra, "boots"]:
        table.add_column(col, justify="right" if col in ("vcpus", "boots") else "left",
                         no_wrap=col == "cell")
    for c in m.cells:
        d = c.as_dict()
        attrs = d["host_attrs"]
        table.add_row(c.id, c.host, *[str(attrs.get(a, "")) for a in attr_names], c.guest,
                      str(c.vcpus), *[str(d.get(e, "")) for e in extra], str(c.boots))
    Console(width=None if sys.stdout.isatty() else 200).print(table)
