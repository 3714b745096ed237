"""The HTML report: one self-contained file (inline CSS, JS and data; nothing fetched).

The static sections (comparisons, previous run, signatures, latency histogram, versions)
are rendered by Jinja2 with autoescaping. The heatmap and the drill-down are drawn by a
small vanilla script from a JSON payload embedded in the page, so a 1,000-cell matrix
costs one table of boxes and each drill-down page renders 50 boots on demand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from harness import __version__
from harness.report.view import (
    OUTCOME_LABELS,
    BootView,
    DelayPoint,
    Histogram,
    Rate,
    RunView,
    pct,
    rate_text,
    show_value,
)
from harness.xmltext import finalize as xml_finalize

OUTCOME_CODES = {"ok": 0, "vcpu_offline": 1, "boot_failure": 2, "infra_error": 3}


def script_json(obj: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``,
    ``&`` or line separators survive literally, so no data can close the element."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _r(rate: Rate) -> list[float | None]:
    def rnd(x: float | None) -> float | None:
        return None if x is None else round(x, 5)

    return [rnd(rate.value), rnd(rate.low), rnd(rate.high)]


def _jsval(v: Any) -> Any:
    return v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else show_value(v)


def _boot_row(b: BootView, detail: int) -> list[Any]:
    return [b.index, OUTCOME_CODES.get(b.outcome, 3),
            None if b.latency_s is None else round(b.latency_s, 4), b.reason,
            ",".join(map(str, b.offline_cpus)), detail]


def _detail(b: BootView) -> dict[str, Any] | None:
    if b.outcome == "ok" and not b.snippets:
        return None
    return {
        "sn": [{"label": s.label, "first": s.first_line, "lines": list(s.lines),
                "mark": list(s.mark)} for s in b.snippets],
        "a": [[name, path] for name, path in b.artifacts],
    }


def default_pivot(view: RunView) -> tuple[str, str]:
    """Rows by host, columns by guest, unless one of them has a single value and another
    key has more: the most informative two of the keys."""
    keys = view.group_keys
    distinct = {k: len({str(c.keys().get(k)) for c in view.cells}) for k in keys}
    ordered = [k for k in keys if distinct[k] > 1] or list(keys)
    rows = ordered[0]
    cols = next((k for k in ordered[1:] if k != rows), "")
    if "host" in ordered and "guest" in ordered:
        rows, cols = "host", "guest"
    return rows, cols


def payload(view: RunView) -> dict[str, Any]:
    keys = list(view.group_keys)
    cells: list[dict[str, Any]] = []
    boots: list[list[list[Any]]] = []
    details: list[dict[str, Any]] = []
    for i, c in enumerate(view.cells):
        kv = c.keys()
        cells.append({
            "i": i, "id": c.id, "k": [_jsval(kv.get(k, "")) for k in keys],
            "n": [c.ok, c.vcpu_offline, c.boot_failure, c.infra_error],
            "r": {"vcpu_offline": _r(c.vcpu_offline_rate),
                  "boot_failure": _r(c.boot_failure_rate)},
            "v": c.verdict,
            "e": c.stopped_early is not None,  # stopped early: intervals are CS
            "s": [j.statement + " \u2192 " + j.verdict for j in c.judgements],
            "g": [[s.title, s.count] for s in c.signatures],
            "ver": [[k, v] for k, v in c.versions],
        })
        rows = []
        for b in c.boot_views:
            d = _detail(b)
            idx = -1
            if d is not None:
                details.append(d)
                idx = len(details) - 1
            rows.append(_boot_row(b, idx))
        boots.append(rows)
    rows_key, cols_key = default_pivot(view) if view.cells else ("host", "guest")
    return {
        "run": {"id": view.id, "matrix": view.matrix, "z": _z(view.confidence)},
        "keys": keys, "view": {"rows": rows_key, "cols": cols_key},
        "cells": cells, "boots": boots, "details": details,
    }


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return round(float(norm.ppf(0.5 + confidence / 2)), 6)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    label: str


def histogram_svg(h: Histogram, width: int = 640, height: int = 180) -> dict[str, Any]:
    """Geometry of an SVG bar chart of ``h`` (pure)."""
    left, top, bottom = 44, 8, 30
    base = height - bottom
    ymax = max(h.counts) if h.counts else 0
    plot_w = width - left - 10
    span = (h.edges[-1] - h.edges[0]) or 1.0
    bars = []
    for i, count in enumerate(h.counts):
        x0 = left + plot_w * (h.edges[i] - h.edges[0]) / span
        x1 = left + plot_w * (h.edges[i + 1] - h.edges[0]) / span
        bh = 0.0 if ymax == 0 else (base - top) * count / ymax
        bars.append(Bar(round(x0 + 0.5, 1), round(base - bh, 1), round(max(x1 - x0 - 1, 1), 1),
                        round(bh, 1), f"{h.edges[i]:.3f}-{h.edges[i + 1]:.3f} s: {count} boots"))
    nticks = min(6, len(h.edges))
    ticks = []
    for j in range(nticks):
        i = round(j * (len(h.edges) - 1) / max(nticks - 1, 1))
        x = left + plot_w * (h.edges[i] - h.edges[0]) / span
        ticks.append({"x": round(x, 1), "label": _num(h.edges[i])})
    return {"width": width, "height": height, "left": left, "top": top, "base": base,
            "bars": bars, "ticks": ticks, "ymax": ymax}


OUTCOME_COLORS = {"ok": "#2f9e44", "vcpu_offline": "#e03131", "boot_failure": "#f08c00"}


def _ticks(hi: float, n: int = 5) -> list[float]:
    step = hi / n if hi > 0 else 1.0
    mag = 10 ** math.floor(math.log10(step))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= step)
    return [round(i * step, 6) for i in range(int(hi / step) + 1)]


def scatter_svg(points: tuple[DelayPoint, ...], width: int = 640,
                height: int = 280) -> dict[str, Any] | None:
    """Geometry of the latency-vs-host-delay scatter (pure). A point whose vCPU never
    came up has no latency: it goes into the band above the plot."""
    shown = [p for p in points if p.latency_s is not None or p.outcome != "ok"]
    if not shown:
        return None
    left, right, top, bottom, band = 52, 14, 8, 34, 26
    base = height - bottom
    y0 = top + band + 8  # the plot's top edge, below the "never came up" band
    xmax = max(p.host_delay_s for p in shown) * 1.05 or 1.0
    lat = [p.latency_s for p in shown if p.latency_s is not None]
    ymax = (max(lat) * 1.1 if lat else 1.0) or 1.0
    xt, yt = _ticks(xmax), _ticks(ymax)
    xmax, ymax = max(xmax, xt[-1]), max(ymax, yt[-1])
    pw, ph = width - left - right, base - y0
    dots = []
    for p in shown:
        x = left + pw * p.host_delay_s / xmax
        y = top + band / 2 if p.latency_s is None else base - ph * p.latency_s / ymax
        what = "trial" if p.kind == "trial" else "boot"
        lat_text = "never came up" if p.latency_s is None else f"latency {p.latency_s:.3f} s"
        dots.append({"x": round(x, 1), "y": round(y, 1), "hollow": p.kind == "trial",
                     "color": OUTCOME_COLORS.get(p.outcome, "#868e96"),
                     "label": f"{p.cell} {what} {p.index}: CPU{p.cpu}, host delay "
                              f"{p.host_delay_s:.3f} s, {lat_text} ({p.outcome})"})
    return {
        "width": width, "height": height, "left": left, "right": width - right, "top": top,
        "band": top + band, "y0": y0, "base": base, "dots": dots,
        "xticks": [{"x": round(left + pw * v / xmax, 1), "label": _num(v)} for v in xt],
        "yticks": [{"y": round(base - ph * v / ymax, 1), "label": _num(v)} for v in yt],
        "n": len(shown), "failed": sum(1 for p in shown if p.latency_s is None),
        "left_out": len(points) - len(shown),
    }


def _num(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return "0"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        finalize=xml_finalize,  # what a guest printed: no character XML cannot hold
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(pct=pct, rate_text=rate_text, labels=OUTCOME_LABELS)
    return env


def _static(name: str) -> str:
    return resources.files("harness.report").joinpath("templates", name).read_text("utf-8")


def render_html(view: RunView) -> str:
    tpl = _env().get_template("report.html.j2")
    return tpl.render(
        run=view, totals=view.totals, verdicts=view.verdict_counts,
        stopped=sum(c.stopped_early is not None for c in view.cells),
        confidence_pct=pct(view.confidence), comparisons=view.comparisons,
        alpha=round(1 - view.confidence, 4), diff=view.previous,
        previous_note=view.previous_note, signatures=view.signature_totals(),
        regs=view.regressions, completeness=view.completeness,
        hist=view.latency, svg=histogram_svg(view.latency) if view.latency else None,
        scatter=scatter_svg(view.delay_points), hosts=view.hosts,
        config=[(k, _show(v)) for k, v in view.config], versions=view.versions,
        payload=script_json(payload(view)), css=_static("report.css"),
        js=_static("report.js"), harness_version=__version__,
    )


def _show(v: Any) -> str:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str, sort_keys=True)
    return str(v)


def write_html(view: RunView, path: Path) -> Path:
    path.write_text(render_html(view), encoding="utf-8")
    return path

