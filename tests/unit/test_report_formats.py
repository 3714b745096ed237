"""The four report formats from a synthetic view-model (no store, no statistics here)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from harness.report.html import default_pivot, histogram_svg, payload, render_html, script_json
from harness.report.jsonreport import to_json
from harness.report.junit import to_xml
from harness.report.markdown import md_escape, to_markdown
from harness.report.sample import sample_view
from harness.report.view import Histogram, pct, rate_text


@pytest.fixture(scope="module")
def view():
    return sample_view(hosts=2, guests=("es10", "es11"), vcpus=(4, 16), boots=20, seed=3)


def test_pct_and_rate_text():
    assert pct(0.2412) == "24%"
    assert pct(0.004) == "0.4%"
    assert pct(0.995) == "99.5%"
    assert pct(None) == "n/a"
    from harness.report.view import Rate

    assert rate_text(Rate(k=12, n=50, value=0.24, low=0.1430, high=0.3741)) == (
        "12/50 = 24% [14%, 37%]")
    assert rate_text(Rate(k=0, n=0, value=None, low=0, high=1)) == "0/0 (no guest boots)"


# --- JSON ---------------------------------------------------------------------------------

CELL_KEYS = {"id", "host", "guest", "vcpus", "boots", "ok", "vcpu_offline", "boot_failure",
             "infra_error", "vcpu_offline_rate", "boot_failure_rate", "signatures", "verdict",
             "versions", "interval", "stopped_early", "statements"}


def test_json_schema_exact(view):
    doc = json.loads(json.dumps(to_json(view)))
    assert set(doc) == {"run", "cells", "comparisons", "previous", "baseline", "regressions",
                        "completeness", "hosts", "host_delay"}
    for h in doc["hosts"]:
        assert {"name", "attributes", "facts", "source"} <= set(h)
    assert isinstance(doc["host_delay"], list)
    assert set(doc["run"]) == {"id", "matrix", "started", "finished"}
    assert len(doc["cells"]) == len(view.cells) == 8
    for c in doc["cells"]:
        assert set(c) == CELL_KEYS
        assert set(c["vcpu_offline_rate"]) == {"value", "low", "high"}
        assert c["boots"] == c["ok"] + c["vcpu_offline"] + c["boot_failure"] + c["infra_error"]
        for s in c["signatures"]:
            assert set(s) == {"title", "count", "known"}
        assert c["verdict"] in ("pass", "fail", "undecided", "not_judged")


def test_json_rates_exclude_infra_errors():
    view = sample_view(seed=7)
    cell = next(c for c in view.cells if c.infra_error)  # seed 7 has some
    d = next(c for c in to_json(view)["cells"] if c["id"] == cell.id)
    n = d["ok"] + d["vcpu_offline"] + d["boot_failure"]
    assert n < d["boots"]
    assert d["vcpu_offline_rate"]["value"] == pytest.approx(d["vcpu_offline"] / n)


# --- JUnit --------------------------------------------------------------------------------


def test_junit_one_case_per_cell(view):
    root = to_xml(view).getroot()
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [c.id for c in view.cells]
    assert {c.get("classname") for c in cases} == {view.matrix}
    counts = view.verdict_counts
    assert root.get("failures") == str(counts["fail"]) and counts["fail"] > 0
    assert root.find("testsuite").get("skipped") == str(counts["undecided"])
    assert len(root.findall(".//testcase/failure")) == counts["fail"]
    assert len(root.findall(".//testcase/skipped")) == counts["undecided"]


def test_junit_failure_message_is_the_statement(view):
    root = to_xml(view).getroot()
    failed = [c for c in root.findall(".//testcase") if c.find("failure") is not None]
    msg = failed[0].find("failure").get("message")
    assert re.fullmatch(r"vCPU offline \d+/\d+ = [\d.]+% \[[\d.]+%, [\d.]+%\], "
                        r"expected <= 10%", msg.split("; ")[0]), msg
    out = failed[0].find("system-out").text
    props = dict(line.split(" = ", 1) for line in out.splitlines() if " = " in line)
    cell = next(c for c in view.cells if c.id == failed[0].get("name"))
    assert props["vcpu_offline"] == str(cell.vcpu_offline)
    assert props["boots"] == str(cell.boots)
    assert props["host.numa_patch"] == str(dict(cell.host_attrs)["numa_patch"]).lower()


def test_junit_is_parseable_with_hostile_text(view, tmp_path: Path):
    from harness.report.junit import write_junit

    hostile = replace(view.cells[0], id='a<b>&"c"/]]>')
    path = write_junit(replace(view, cells=(hostile,)), tmp_path / "j.xml")
    case = ET.parse(path).getroot().find(".//testcase")
    assert case is not None and case.get("name") == 'a<b>&"c"/]]>'


# --- Markdown ------------------------------------------------------------------------------


def test_markdown_lists_failing_cells(view):
    md = to_markdown(view)
    counts = view.verdict_counts
    assert (f"**{counts['fail']} fail, {counts['undecided']} undecided, "
            f"{counts['pass']} pass, {counts['clean']} clean**") in md
    for c in view.cells:
        if c.verdict == "fail":
            assert f"| {md_escape(c.id)} |" in md
    assert "## Comparisons" in md


def test_markdown_escapes_table_breakers():
    assert md_escape("a|b") == "a\\|b"
    assert "\n" not in md_escape("x\ny")
    assert md_escape("<script>") == "\\<script\\>"


# --- HTML ----------------------------------------------------------------------------------


def test_script_json_cannot_close_the_element():
    text = script_json({"t": "</script><script>alert(1)</script>", "u": "a\u2028b&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text)["t"] == "</script><script>alert(1)</script>"


def test_html_is_self_contained(view):
    html = render_html(view)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html
    assert html.count("<script") == 2  # the data and the code, both inline
    assert "<style>" in html


def test_html_escapes_user_text(view):
    evil = replace(view.cells[0], signatures=(
        view.cells[0].signatures[0].__class__(kind="x", title="<img src=x onerror=alert(1)>",
                                              count=3),))
    html = render_html(replace(view, cells=(evil, *view.cells[1:])))
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the signatures table


def test_payload_matches_cells(view):
    p = payload(view)
    assert p["keys"] == ["host", "guest", "vcpus", "numa_patch", "cpu"]
    assert len(p["cells"]) == len(p["boots"]) == len(view.cells)
    for c, pc, pb in zip(view.cells, p["cells"], p["boots"], strict=True):
        assert pc["n"] == [c.ok, c.vcpu_offline, c.boot_failure, c.infra_error]
        assert len(pb) == c.boots
        # details only for boots that were not ok: no whole logs in the page
        for row in pb:
            assert (row[5] >= 0) == (row[1] != 0)


def test_default_pivot_prefers_host_by_guest(view):
    assert default_pivot(view) == ("host", "guest")
    one_host = replace(view, cells=tuple(c for c in view.cells if c.host == "node-1"))
    assert default_pivot(one_host) == ("guest", "vcpus")  # one host: nothing to show
    one_guest = replace(view, cells=tuple(c for c in view.cells if c.guest == "es11"))
    assert default_pivot(one_guest) == ("host", "vcpus")


def test_histogram_svg_geometry():
    h = Histogram((0.0, 1.0, 2.0, 4.0), (5, 10, 0), 15, 1.0, 2.0, 3.5)
    g = histogram_svg(h, width=400, height=100)
    heights = [b.h for b in g["bars"]]
    assert heights[1] == max(heights) and heights[2] == 0
    assert heights[0] == pytest.approx(heights[1] / 2, abs=0.1)
    assert g["bars"][2].w > g["bars"][1].w  # the 2..4 s bin is twice as wide
    assert g["ymax"] == 10


def test_versions_are_in_every_format(view):
    from harness.report.kcidb import to_kcidb

    vers = (("guest_kernel", "6.1.0-57-arm64"), ("qemu", "7.2.22"), ("libvirt", "9.0.0"),
            ("host_kernel", "6.18.44"), ("firmware", "/usr/share/AAVMF/AAVMF_CODE.fd"))
    cells = [replace(view.cells[0], versions=vers), *view.cells[1:]]
    v = replace(view, cells=cells)
    md = to_markdown(v)
    assert "## Versions" in md and "qemu 7.2.22" in md and "guest\\_kernel 6.1.0-57-arm64" in md
    assert to_json(v)["cells"][0]["versions"]["libvirt"] == "9.0.0"
    assert to_json(v)["cells"][1]["versions"] == {}
    props = {p.get("name"): p.get("value") for p in to_xml(v).getroot().iter("property")}
    text = ET.tostring(to_xml(v).getroot(), encoding="unicode")
    assert props.get("version.qemu") == "7.2.22" or "version.qemu = 7.2.22" in text
    assert payload(v)["cells"][0]["ver"][1] == ["qemu", "7.2.22"]
    assert "versions: " in render_html(v)  # the boot list shows them (report.js)
    doc = to_kcidb(v)
    assert any(t.get("misc", {}).get("versions", {}).get("host_kernel") == "6.18.44"
               for t in doc["tests"])
