"""The page of a bisection campaign, without a browser (the browser test is in
tests/integration/test_bisect_build_sim.py): the chart's geometry, escaping, the CLI's
``--html``."""

from __future__ import annotations

import json
import re
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.bisect.campaign import load_campaign
from harness.bisect.html import chart, render_bisect_html, rows
from harness.bisect.loop import BisectOptions, BisectRunner
from harness.bisect.summary import summarize
from harness.cli import cli

N = 12
CULPRIT = 7


def write(tmp: Path, failure: str = "vcpu_offline") -> Path:
    guests = "\n".join(f"  b{i:02d}: {{}}" for i in range(N))
    bad = ", ".join(f"b{i:02d}" for i in range(CULPRIT, N))
    (tmp / "lab.yaml").write_text(f"""name: html-test
hosts:
  sim-1: {{uri: "sim:///", slots: 2}}
guests:
{guests}
sim:
  seed: 3
  rules:
    - match: {{guest: [{bad}]}}
      vcpu_offline: 0.7
""")
    builds = ", ".join(f"b{i:02d}" for i in range(N))
    camp = tmp / "campaign.yaml"
    camp.write_text(f"lab: lab.yaml\nbuilds: [{builds}]\ncell: {{host: sim-1, vcpus: 4}}\n"
                    f"failure: {failure}\n")
    return camp


def test_one_bar_per_build_scaled_by_the_posterior(tmp_path: Path) -> None:
    c = load_campaign(write(tmp_path))
    res = BisectRunner(c, BisectOptions(db=tmp_path / "r.db",
                                        reports_dir=tmp_path / "rep")).run()
    s = summarize(res.posterior, c.confidence)
    assert res.culprit == f"b{CULPRIT:02d}"
    builds = rows(res, s, c)
    g = chart(builds, width=800)
    assert [b.row.name for b in g["bars"]] == list(c.builds)
    xs = [b.x for b in g["bars"]]
    assert xs == sorted(xs) and g["left"] <= xs[0] and xs[-1] + g["bars"][-1].w <= g["right"]
    post_h = g["base"] - g["top"]
    for b in g["bars"]:
        assert b.h == pytest.approx(post_h * b.row.posterior, abs=0.01)
        assert b.y + b.h == pytest.approx(g["base"], abs=0.01)
    assert [b.row.culprit for b in g["bars"]].count(True) == 1
    assert g["mark"]["text"] == f"b{CULPRIT:02d} {res.posterior.probability:.3f}"
    most = max(res.posterior.boots)
    for k, f in zip(g["boots"], g["fails"], strict=True):
        assert k.h == pytest.approx((g["boots_base"] - g["boots_top"]) * k.row.boots / most,
                                    abs=0.01)
        assert f.h <= k.h
    label_x = [lb["x"] for lb in g["labels"]]
    assert all(b - a >= 18 for a, b in pairwise(label_x))
    assert f"b{CULPRIT:02d}" in [lb["name"] for lb in g["labels"]]
    html = render_bisect_html(res, s, c)
    assert len(re.findall(r'<rect class="bar[ "]', html)) == N
    assert len(re.findall(r'<rect class="bar culprit"', html)) == 1
    assert "<script" not in html and "http" not in html  # nothing to run or to fetch


def test_user_text_is_escaped(tmp_path: Path) -> None:
    camp = write(tmp_path, failure='{signature: "<script>alert(1)</script>"}')
    c = load_campaign(camp)
    res = BisectRunner(c, BisectOptions(db=tmp_path / "r.db", reports_dir=tmp_path / "rep",
                                        max_rounds=1)).run()
    html = render_bisect_html(res, summarize(res.posterior, c.confidence), c)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_cli_writes_the_page_next_to_the_run(tmp_path: Path) -> None:
    camp = write(tmp_path)
    args = ["bisect", str(camp), "--db", str(tmp_path / "r.db"), "--reports-dir",
            str(tmp_path / "rep")]
    out = CliRunner().invoke(cli, [*args, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    page = tmp_path / "rep" / data["run_id"] / "bisect.html"
    assert data["html"] == str(page) and page.is_file()
    assert f'id="culprit-name">{data["culprit"]}<' in page.read_text()
    out = CliRunner().invoke(cli, [*args, "--html", str(tmp_path / "elsewhere" / "p.html")])
    assert out.exit_code == 0, out.output
    assert out.stdout.rstrip().endswith(f"page: {tmp_path / 'elsewhere' / 'p.html'}")
    assert (tmp_path / "elsewhere" / "p.html").is_file()
