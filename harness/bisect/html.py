"""The page of a bisection campaign: one self-contained HTML file (inline CSS, inline SVG
drawn here; no script, nothing fetched), rendered by Jinja2 with autoescaping.

It shows the culprit and its probability, the posterior per build as a bar chart (the
culprit highlighted, builds set aside marked), boots and failures per build, the counts at
the culprit and at the build before with their intervals and Fisher's test, and the
second-change-point checks: the numbers of ``harness.bisect.summary``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from harness import __version__

from .campaign import Campaign
from .loop import BisectResult
from .summary import Counts, Summary

STATUS_TEXT = {
    "found": "culprit found at the target confidence",
    "budget": "stopped: budget spent",
    "stopped": "stopped before the target confidence",
    "no_build": "stopped: no usable build left",
    "no_host": "stopped: no host left",
    "interrupted": "interrupted",
}


@dataclass(frozen=True)
class BuildRow:
    index: int
    name: str
    rev: str | None
    boots: int
    failures: int
    posterior: float
    culprit: bool
    credible: bool  # in the credible set
    set_aside: str | None

    @property
    def rate(self) -> str:
        return f"{self.failures / self.boots:.1%}" if self.boots else "-"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    row: BuildRow


def rows(res: BisectResult, s: Summary, c: Campaign | None = None) -> list[BuildRow]:
    post = res.posterior
    revs = {b.name: b.rev for b in c.build.builds} if c and c.build else {}
    credible = set(s.credible_set)
    return [BuildRow(i, name, revs.get(name), post.boots[i], post.failures[i],
                     post.culprit[i], i == s.culprit, i in credible, res.set_aside.get(name))
            for i, name in enumerate(res.builds)]


def chart(builds: list[BuildRow], width: int = 960) -> dict[str, Any]:
    """Geometry of the two bar charts, one bar per build: the posterior (0..1) and, below,
    boots with their failures (pure)."""
    left, right, top, post_h, gap, boots_h = 48, 12, 10, 200, 34, 80
    n = len(builds)
    plot_w = width - left - right
    step = plot_w / n
    bw = max(step * 0.8, 1.0) if step >= 3 else max(step, 0.5)
    base = top + post_h
    boots_top = base + gap
    boots_base = boots_top + boots_h
    most = max((b.boots for b in builds), default=0) or 1
    bars, boots, fails = [], [], []
    for b in builds:
        x = round(left + b.index * step + (step - bw) / 2, 2)
        h = round(post_h * b.posterior, 2)
        bars.append(Bar(x, round(base - h, 2), round(bw, 2), h, b))
        kh = round(boots_h * b.boots / most, 2)
        fh = round(boots_h * b.failures / most, 2)
        boots.append(Bar(x, round(boots_base - kh, 2), round(bw, 2), kh, b))
        fails.append(Bar(x, round(boots_base - fh, 2), round(bw, 2), fh, b))
    mark = None  # the culprit's name and probability, above its bar or beside a tall one
    for bar in bars:
        if bar.row.culprit:
            tall = bar.h > post_h * 0.85
            right = bar.x + bar.w / 2 < left + plot_w / 2
            x = (bar.x + bar.w + 4 if right else bar.x - 4) if tall else bar.x + bar.w / 2
            anchor = ("start" if right else "end") if tall else "middle"
            mark = {"x": round(x, 2), "y": round(top + 12 if tall else bar.y - 4, 2),
                    "anchor": anchor, "text": f"{bar.row.name} {bar.row.posterior:.3f}"}
    labels: list[dict[str, Any]] = []
    every = max(1, math.ceil(n / 16))
    first = [b.index for b in builds if b.culprit]
    for i in [*first, 0, n - 1, *range(0, n, every)]:  # most wanted first; none overlap
        x = round(left + i * step + step / 2, 2)
        if all(abs(x - lb["x"]) >= 18 for lb in labels):
            labels.append({"x": x, "name": builds[i].name, "culprit": builds[i].culprit})
    labels.sort(key=lambda lb: lb["x"])
    yticks = [{"y": round(base - post_h * v, 2), "label": f"{v:g}"}
              for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    height = boots_base + 90  # room for the slanted names
    return {"width": width, "height": height, "left": left, "right": width - right,
            "top": top, "base": base, "boots_top": boots_top, "boots_base": boots_base,
            "bars": bars, "boots": boots, "fails": fails, "labels": labels, "yticks": yticks,
            "mark": mark,
            "most": most}


def counts_text(c: Counts) -> str:
    if not c.boots:
        return "no boots"
    return f"{c.failures}/{c.boots} = {c.rate:.1%} (95% CI {c.low:.1%} to {c.high:.1%})"


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(counts_text=counts_text, p_text=p_text)
    return env


def render_bisect_html(res: BisectResult, s: Summary, c: Campaign) -> str:
    builds = rows(res, s, c)
    post = res.posterior
    checks = [{"side": ch.side, "first": res.builds[ch.first], "last": res.builds[ch.last],
               "with_data": ch.builds_with_data, "log10_bf": ch.log10_bayes_factor,
               "split": None if ch.split is None else res.builds[ch.split],
               "before": ch.before, "after": ch.after, "p": ch.p_homogeneity,
               "suspicious": ch.suspicious} for ch in s.checks]
    css = resources.files("harness.report").joinpath("templates", "report.css") \
        .read_text("utf-8")
    return _env().get_template("bisect.html.j2").render(
        c=c, res=res, s=s, post=post, builds=builds, culprit=builds[s.culprit],
        before=builds[s.culprit - 1] if s.culprit > 0 else None,
        status_text=STATUS_TEXT.get(res.status, res.status),
        credible=[res.builds[i] for i in s.credible_set], checks=checks,
        svg=chart(builds), css=css, harness_version=__version__,
        known_bad_failed=post.failures[-1] > 0)


def write_bisect_html(res: BisectResult, s: Summary, c: Campaign, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_bisect_html(res, s, c), encoding="utf-8")
    return path
