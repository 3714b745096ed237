"""The HTML report in a real headless Chromium (Debian ``chromium``), driven over the
DevTools protocol: it renders with no console error and no network request, the heatmap
shows distinct colours in a screenshot, the pivot controls and the drill-down work, and
the page's pooled Wilson interval agrees with ``harness.stats``."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_page import CHROMIUM, Page, open_page

from harness import stats
from harness.report import write_reports
from harness.report.sample import record_sample_run
from harness.store import Store

websocket = pytest.importorskip("websocket", reason="needs websocket-client (dev extra)")
Image = pytest.importorskip("PIL.Image", reason="needs Pillow (dev extra)")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install "
                       "chromium)"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    with Store(root / "reports" / "lab.db") as store:
        kw = {"hosts": 3, "guests": ("es10", "es11", "es14", "es15"), "vcpus": (4, 8),
              "boots": 25}
        record_sample_run(store, "b1", root / "reports" / "b1", seed=11, started=1000.0, **kw)
        record_sample_run(store, "b2", root / "reports" / "b2", seed=12, started=2000.0,
                          scale=2.0, **kw)
        return write_reports(store, "b2", ["html"])["html"]


@pytest.fixture(scope="module")
def page(report: Path) -> Iterator[Page]:
    with open_page(report) as p:
        yield p


def test_renders_without_console_errors_or_network(page: Page, report: Path):
    assert page.js("document.title").startswith("ft2500-sample")
    assert page.errors() == []
    urls = page.requested()
    assert urls and all(u == report.as_uri() for u in urls), urls  # nothing else fetched


def test_screenshot_shows_the_heatmap(page: Page, report: Path):
    rect = page.js("(() => { const r = document.getElementById('heatmap')"
                   ".getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()")
    x, y, w, h = rect
    assert w > 300 and h > 100
    shot = page.send("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    out = Path(os.environ.get("HB_SCREENSHOT", report.parent / "screenshot.png"))
    out.write_bytes(png)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    region = img.crop((int(x), int(y), int(x + w), int(y + h)))
    colours = region.getcolors(maxcolors=1 << 24)
    assert colours is not None and len(colours) > 50  # text, borders and many box colours
    # one box per host x guest, and boxes of clearly different hues (green vs orange/red)
    boxes_js = ("Array.from(document.querySelectorAll('#heatmap td.hm:not(.empty)'))"
                ".map(td => { const r = td.getBoundingClientRect();"
                " return [td.dataset.row, td.dataset.col, r.x + 3, r.y + r.height - 3]; })")
    boxes = page.js(boxes_js)
    assert len(boxes) == 3 * 4
    # it opens on the verdict, each box showing its worst class's rate
    assert page.js("document.getElementById('metric').value") == "verdict"
    verdicts = page.js("Array.from(document.querySelectorAll('#heatmap td.hm:not(.empty)'))"
                       ".map(td => [td.dataset.row, td.dataset.col, td.dataset.verdict,"
                       " td.querySelector('.v').textContent])")
    fills = {(row, col): img.getpixel((int(bx), int(by))) for row, col, bx, by in boxes}
    assert {v for _, _, v, _ in verdicts} >= {"fail", "undecided"}
    for row, col, verdict, text in verdicts:
        assert text.startswith(verdict)
        r, g, _ = fills[(row, col)]
        assert (r > g) if verdict == "fail" else True  # failing boxes are red
    # the rates per class stay one click away: colour by vCPU-offline rate
    page.js("(() => { const s = document.getElementById('metric'); s.value = 'vcpu_offline';"
            " s.dispatchEvent(new Event('change')); return true; })()")
    shot = page.send("Page.captureScreenshot", format="png")
    img = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    boxes = page.js(boxes_js)  # the boxes lost their verdict line: smaller now
    fills = {(row, col): img.getpixel((int(bx), int(by))) for row, col, bx, by in boxes}
    clean = fills[("node-2", "es10")]  # NUMA patch, es10: about 0%
    bad = fills[("node-1", "es14")]  # no NUMA patch: tens of percent
    assert clean[1] > clean[0]  # green dominates
    assert bad[0] > bad[1]  # red dominates
    assert len(set(fills.values())) >= 4  # a continuous scale: many hues
    page.js("(() => { const s = document.getElementById('metric'); s.value = 'verdict';"
            " s.dispatchEvent(new Event('change')); return true; })()")


def test_pivot_controls_regroup_the_table(page: Page):
    heads = page.js("Array.from(document.querySelectorAll('#heatmap thead th'))"
                    ".map(th => th.textContent)")
    assert heads == ["host \\ guest", "es10", "es11", "es14", "es15"]
    page.js("""(() => { const s = document.getElementById('pivot-rows');
              s.value = 'numa_patch'; s.dispatchEvent(new Event('change')); })()""")
    page.js("""(() => { const s = document.getElementById('pivot-cols');
              s.value = 'vcpus'; s.dispatchEvent(new Event('change')); })()""")
    heads = page.js("Array.from(document.querySelectorAll('#heatmap thead th'))"
                    ".map(th => th.textContent)")
    assert heads == ["numa_patch \\ vcpus", "4", "8"]
    rows = page.js("Array.from(document.querySelectorAll('#heatmap tbody th'))"
                   ".map(th => th.textContent)")
    assert rows == ["false", "true"]
    # pooled boxes: every cell counted exactly once
    n_cells = page.js("Array.from(document.querySelectorAll('#heatmap td.hm:not(.empty)'))"
                      ".reduce((s, td) => s + Number(td.dataset.cells), 0)")
    assert n_cells == 24
    # a filter narrows the cells shown
    page.js("""(() => { const s = document.getElementById('filter-guest');
              s.value = 'es10'; s.dispatchEvent(new Event('change')); })()""")
    assert "6 of 24 cells shown" in page.js("document.getElementById('heatmap-note')"
                                            ".textContent")
    assert page.errors() == []


def test_pooled_interval_matches_harness_stats(page: Page):
    for k, n in ((0, 25), (12, 50), (49, 50), (3, 700)):
        lo, hi = page.js(f"harnessReport.wilson({k}, {n}).slice(1)")
        ref = stats.wilson(k, n)
        assert lo == pytest.approx(ref.low, abs=1e-6) and hi == pytest.approx(ref.high, abs=1e-6)


def test_drill_down_shows_boots_and_log_context(page: Page):
    page.js("""(() => { for (const [id, v] of [['pivot-rows', 'host'], ['pivot-cols', 'guest'],
              ['filter-vcpus', '8']]) { const s = document.getElementById(id); s.value = v;
              s.dispatchEvent(new Event('change')); } })()""")
    page.js("""document.querySelector('#heatmap td.hm[data-row="node-1"][data-col="es14"]')
              .click()""")
    assert page.js("document.querySelectorAll('#drill-cells tbody tr').length") == 1
    bars = page.js("document.querySelectorAll('#drill-latency rect').length")
    assert bars == 24
    text = page.js("document.getElementById('boots').textContent")
    assert "node-1/es14/vcpu8" in text
    hits = page.js("Array.from(document.querySelectorAll('#boots pre.snip .hit'))"
                   ".map(e => e.textContent)")
    assert hits and any("failed to come online" in h for h in hits)
    link = page.js("document.querySelector('#boots a').getAttribute('href')")
    assert link.endswith("dmesg.txt") and not link.startswith(("/", "http"))
    page.js("document.getElementById('only-failed').click()")  # every boot, paginated
    boxes = page.js("document.querySelectorAll('#boots .boot').length")
    assert boxes == 25  # one page (50 per page)
    assert page.errors() == []


def test_cell_search_narrows_the_heatmap(page: Page):
    page.js("""(() => { const s = document.getElementById('filter-vcpus');
              s.value = ''; s.dispatchEvent(new Event('change')); })()""")
    page.js("""(() => { const s = document.getElementById('cell-search');
              s.value = 'node-3/es15'; s.dispatchEvent(new Event('change')); })()""")
    assert "2 of 24 cells shown" in page.js("document.getElementById('heatmap-note')"
                                            ".textContent")
    page.js("""(() => { const s = document.getElementById('cell-search');
              s.value = ''; s.dispatchEvent(new Event('change')); })()""")
    assert page.errors() == []
