"""The history dashboard of a matrix: one self-contained HTML file (inline CSS and SVG,
no script needed, nothing fetched). Per cell a strip over the nights (each night's rate
of guest failures with its interval, on a background of its verdict), the first bad
night marked with its confidence, links to each night's report and to the failing
boots' console and dmesg; per night its completeness and what was new against its
baseline."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.history.nights import History, NightCell
from harness.report.build import iso
from harness.report.view import pct

STEP = 30  # px per night in a strip
HEIGHT = 58
PAD = 7
VERDICT_FILL = {"fail": "#f3b6b6", "undecided": "#fbe3b0", "pass": "#c8e6c9",
                "clean": "#c8e6c9", "not_judged": "#e3e7eb"}


def _y(v: float) -> float:
    """sqrt scale: small rates stay visible."""
    return round(HEIGHT - PAD - math.sqrt(max(0.0, min(1.0, v))) * (HEIGHT - 2 * PAD - 6), 1)


@dataclass(frozen=True)
class Column:
    x: int
    href: str | None
    title: str
    fill: str
    interval: tuple[float, float] | None  # y of high, y of low
    dot: float | None
    verdict: str
    first_bad: bool
    incomplete: bool
    run: str


def _columns(h: History, nights: tuple[NightCell | None, ...], bad: int | None
             ) -> list[Column]:
    out = []
    for i, (night, c) in enumerate(zip(h.nights, nights, strict=True)):
        x = i * STEP
        inc = not night.status.complete
        if c is None or c.n == 0:
            why = "not in this run" if c is None else "no guest boot"
            out.append(Column(x, night.report, f"{night.run_id}: {why}", "#eceff1", None, None,
                              "none", False, inc, night.run_id))
            continue
        title = (f"{night.run_id}: guest failures {c.k}/{c.n} = {pct(c.value)} "
                 f"[{pct(c.low)}, {pct(c.high)}] ({c.vcpu_offline} vCPU offline, "
                 f"{c.boot_failure} boot failure), verdict {c.verdict}"
                 + (f"; {c.infra} infrastructure errors" if c.infra else "")
                 + ("; incomplete night: " + night.status.why if inc else ""))
        out.append(Column(x, night.report, title, VERDICT_FILL.get(c.verdict, "#e3e7eb"),
                          (_y(c.high), _y(c.low)), _y(c.value or 0.0), c.verdict, i == bad,
                          inc, night.run_id))
    return out


def conf(p: float) -> str:
    """A posterior probability for people: never "100%"."""
    return "> 99.9%" if p > 0.999 else pct(p)


def render_dashboard(h: History) -> str:
    from harness.report.html import _env, _static

    rows: list[dict[str, Any]] = []
    for c in h.cells:
        last_cell = next((x for x in reversed(c.nights) if x is not None and x.n > 0), None)
        bad_nights = [(h.nights[i].run_id, x) for i, x in enumerate(c.nights)
                      if x is not None and x.boots]
        rows.append({"cell": c, "columns": _columns(h, c.nights, c.first_bad),
                     "latest": last_cell, "first_bad_run": h.first_bad_run(c),
                     "failing": bad_nights[-4:]})
    last_night = h.nights[-1] if h.nights else None
    tpl = _env().get_template("history.html.j2")
    return tpl.render(h=h, rows=rows, latest=last_night, width=max(1, len(h.nights)) * STEP,
                      height=HEIGHT, step=STEP, iso=iso, pct=pct, conf=conf,
                      css=_static("report.css"),
                      harness_version=__version__,
                      first_bad=[r for r in rows if r["cell"].first_bad is not None])


def write_dashboard(h: History, path: Path) -> Path:
    """Write atomically (a temporary name, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        Path(tmp).write_text(render_dashboard(h), encoding="utf-8")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def default_path(db: Path | str, matrix: str) -> Path:
    """Beside the database and the run folders: ``<db folder>/<matrix>-history.html``
    (``reports/`` for a PostgreSQL database)."""
    from harness.model import safe_name

    folder = Path("reports").resolve() if isinstance(db, str) else db.resolve().parent
    return folder / f"{safe_name(matrix)}-history.html"

