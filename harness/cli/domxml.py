"""``harness domxml MATRIX [--cell ID]``: the libvirt domain XML each cell would define.

Output: for every cell, a line ``<!-- cell: ID -->`` then that cell's ``<domain>`` XML
(boot 0). In the comment the id is percent-encoded where XML needs it (``%`` as ``%25``, a
``-`` after a ``-`` as ``%2D``: ``urllib.parse.unquote`` gives it back), so no cell id can
end the comment early or forge a separator (a document holds no ``<!--``: ElementTree
escapes ``<``). ``--null`` prints the documents separated by NUL bytes instead (no comment
lines), for ``xargs -0`` or ``split('\\0')``; no document can hold a NUL (names and
values with control characters are refused when the files are read). Nothing is
defined and nothing touches libvirt: the XML comes from the same pure function the
backend uses; only the controller identity (pid, boot id) that a real run adds to
``<metadata>`` is left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from harness.backend.base import BootRequest
from harness.backend.domain_xml import domain_xml
from harness.bootloop import domain_name
from harness.errors import ConfigError
from harness.matrix import load_matrix


def cell_comment(cell_id: str) -> str:
    """The separator line (``--`` may not appear inside an XML comment)."""
    text = re.sub(r"(?<=-)-", "%2D", cell_id.replace("%", "%25"))
    return f"<!-- cell: {text} -->"


@click.command()
@click.argument("matrix", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--cell", "cell_ids", multiple=True, metavar="ID",
              help="Only this cell (repeat for several). Default: every cell.")
@click.option("--run-id", default="RUN", show_default=True,
              help="Run id used in the domain names.")
@click.option("--workdir", type=click.Path(path_type=Path), default=None,
              help="Run folder for local per-boot files. Default: reports/<run-id>.")
@click.option("--ssh-port", type=click.IntRange(1, 65535), default=2222, show_default=True,
              help="Forwarded SSH port shown for hosts with user-mode networking.")
@click.option("--null", "nul", is_flag=True, help="Separate documents with NUL bytes.")
def domxml(matrix: Path, cell_ids: tuple[str, ...], run_id: str, workdir: Path | None,
           ssh_port: int, nul: bool) -> None:
    """Print the libvirt domain XML of MATRIX's cells (what 'harness run' would define)."""
    m = load_matrix(matrix)
    cells = [m.cell(c) for c in cell_ids] if cell_ids else m.cells
    run_dir = workdir or Path("reports") / run_id
    out = []
    for cell in cells:
        host, guest = m.lab.host(cell.host), m.lab.guest(cell.guest)
        if host.is_sim:
            raise ConfigError(f"cell {cell.id}: host {cell.host!r} is simulated ({host.uri}); "
                              "simulated hosts define no libvirt domain")
        req = BootRequest(
            run_id=run_id, cell=cell, host_name=cell.host, host=host, guest_name=cell.guest,
            guest=guest, domain_name=domain_name(run_id, cell, 0), boot_index=0,
            workdir=run_dir / cell.folder / "0",
            ssh_port=ssh_port if host.network.type == "user" else None)
        xml = domain_xml(req, metadata={"run": run_id, "cell": cell.id, "index": "0"})
        if "\0" in xml or "<!--" in xml:  # cannot happen (inputs are checked): never split
            raise ConfigError(f"cell {cell.id}: its domain XML holds a NUL or a comment")
        out.append(xml if nul else f"{cell_comment(cell.id)}\n{xml}")
    if nul:
        click.echo("\0".join(out), nl=False)
    else:
        click.echo("".join(out), nl=False)
