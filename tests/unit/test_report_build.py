"""From a real SQLite store to the reports: the view builder, the run comparison,
``write_reports`` and the ``harness report`` / ``harness compare`` commands."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from harness import stats
from harness.cli import cli
from harness.errors import ConfigError
from harness.model import Cell, Finding
from harness.report import parse_formats, write_reports
from harness.report.build import build_view, comparison_plan, context_snippets, tail_snippet
from harness.report.compare import diff_runs
from harness.report.sample import record_sample_run
from harness.store import Store


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three runs of one matrix: r1, r2 (same rates, other seed), r3 (rates x2.5)."""
    root = tmp_path_factory.mktemp("lab")
    reports = root / "reports"
    with Store(reports / "lab.db") as store:
        kw = {"hosts": 2, "guests": ("es10", "es11"), "vcpus": (4, 8), "boots": 20}
        record_sample_run(store, "r1", reports / "r1", seed=1, started=1000.0, **kw)
        record_sample_run(store, "r2", reports / "r2", seed=2, started=2000.0, **kw)
        record_sample_run(store, "r3", reports / "r3", seed=3, started=3000.0, scale=2.5, **kw)
    return root


# --- log context (pure) --------------------------------------------------------------------


def test_context_snippets_merge_and_mark():
    lines = [f"line {i}" for i in range(1, 31)]
    finds = [Finding("a", 10, "line 10"), Finding("b", 12, "line 12"),
             Finding("c", 25, "line 25"), Finding("d", 99, "beyond the text")]
    snips = context_snippets("dmesg", lines, finds, context=2)
    assert [(s.first_line, len(s.lines), s.mark) for s in snips] == [(8, 7, (10, 12)),
                                                                     (23, 5, (25,))]
    assert snips[0].lines[0] == "line 8" and snips[0].label == "a, b at dmesg:10"
    assert context_snippets("dmesg", lines, finds, context=2, max_snippets=1)[0].mark == (10, 12)


def test_tail_snippet():
    s = tail_snippet("console", [str(i) for i in range(1, 101)], n=5)
    assert s is not None and s.first_line == 96 and s.lines == ("96", "97", "98", "99", "100")
    assert tail_snippet("console", []) is None


def test_comparison_plan_pairs_and_direction():
    cells = [Cell(f"h{h}/{g}/vcpu4", "m", f"h{h}", g, 4, 1,
                  host_attrs=(("numa_patch", h == 2), ("rack", "r1")))
             for h in (1, 2) for g in ("es10", "es11", "es14")]
    plan = comparison_plan(cells)
    # numa_patch (bool, one-sided: False fails more), not guest (3 values), not vcpus or
    # rack (one value)
    assert plan == [("numa_patch", False, True, ("guest",), "greater")]


# --- the view from the store --------------------------------------------------------------


def test_build_view_counts_and_verdicts_come_from_stats(lab):
    with Store(lab / "reports" / "lab.db") as store:
        data = store.load_run("r3")
    view = build_view(data, artifacts_root=lab / "reports" / "r3",
                      report_dir=lab / "reports" / "r3")
    assert [c.id for c in view.cells] == [cd.cell.id for cd in data.cells]
    for c, cd in zip(view.cells, data.cells, strict=True):
        assert (c.ok, c.vcpu_offline, c.boot_failure, c.infra_error) == (
            cd.counts.ok, cd.counts.vcpu_offline, cd.counts.boot_failure, cd.counts.infra_error)
        w = stats.display_interval(cd.counts.vcpu_offline, cd.counts.n)
        assert (c.vcpu_offline_rate.low, c.vcpu_offline_rate.high) == (w.low, w.high)
        assert c.interval == "clopper-pearson" and c.stopped_early is None
        assert c.verdict == cd.judgement.status
    assert view.started == "1970-01-01T00:50:00Z"
    assert dict(view.versions)["qemu"] == "7.2.0"
    assert view.latency is not None and view.latency.n > 0
    # es11 on node-1 (no NUMA patch) fails: the comparison finds it, Holm-adjusted
    numa = [c for c in view.comparisons if c.axis == "numa_patch" and c.within == "guest=es11"
            and c.outcome == "vcpu_offline"]
    assert numa and numa[0].significant and numa[0].p_adjusted >= numa[0].p_value


def test_boot_views_carry_log_context_and_relative_links(lab):
    with Store(lab / "reports" / "lab.db") as store:
        data = store.load_run("r3")
    out = lab / "elsewhere"
    view = build_view(data, artifacts_root=lab / "reports" / "r3", report_dir=out)
    offline = [b for c in view.cells for b in c.boot_views if b.outcome == "vcpu_offline"]
    assert offline
    b = offline[0]
    snip = b.snippets[0]
    marked = snip.lines[snip.mark[0] - snip.first_line]
    assert f"CPU{b.offline_cpus[0]}: failed to come online" in marked
    assert len(snip.lines) <= 7  # context, not the whole log
    name, link = b.artifacts[0]
    assert name == "dmesg" and link.startswith("../reports/r3/")
    assert (out / link).resolve().is_file()
    failures = [b for c in view.cells for b in c.boot_views if b.outcome == "boot_failure"]
    assert failures and any(s.source == "console" and "Kernel panic" in s.lines[-1]
                            for s in failures[0].snippets)
    ok = [b for c in view.cells for b in c.boot_views if b.outcome == "ok"]
    assert ok and not ok[0].snippets and not ok[0].artifacts


# --- comparing runs ------------------------------------------------------------------------


def test_same_rates_flag_nothing_worse_rates_are_flagged(lab):
    with Store(lab / "reports" / "lab.db") as store:
        r1, r2, r3 = (store.load_run(r, with_findings=False) for r in ("r1", "r2", "r3"))
    same = diff_runs(r1, r2)
    assert not same.worse and not same.better
    assert len(same.cells) == 2 * len(r1.cells)
    worse = diff_runs(r1, r3)
    assert worse.worse and not worse.better
    for c in worse.worse:
        assert c.b.value > c.a.value and c.p_adjusted < 0.05
    back = diff_runs(r3, r1)
    assert {c.cell_id for c in back.better} == {c.cell_id for c in worse.worse}


def test_new_signature_always_listed(lab):
    with Store(lab / "reports" / "lab.db") as store:
        r1, r3 = store.load_run("r1"), store.load_run("r3")
    titles_r1 = {s.title for s in r1.signatures}
    d = diff_runs(r1, r3)
    for s in d.signatures:
        assert s.new == (s.title not in titles_r1)
    new = [s for s in d.new_signatures]
    if not new:  # make one: r1 without its panics -> the panic signature is new in r3
        from dataclasses import replace

        r1 = replace(r1, signatures=tuple(s for s in r1.signatures if s.kind != "panic"))
        new = list(diff_runs(r1, r3).new_signatures)
    assert new and all(s in diff_runs(r1, r3).flagged_signatures for s in new)


# --- write_reports and the CLI -------------------------------------------------------------


def test_write_reports_all_formats_with_previous_section(lab):
    with Store(lab / "reports" / "lab.db") as store:
        written = write_reports(store, "r3")
    assert set(written) == {"html", "junit", "md", "json"}
    assert all(p.parent == (lab / "reports" / "r3").resolve() for p in written.values())
    doc = json.loads(written["json"].read_text())
    assert doc["run"]["id"] == "r3" and doc["previous"]["previous_run"] == "r2"
    assert doc["previous"]["worse"]
    md = written["md"].read_text()
    assert "## Against the previous run" in md and "Rate changes against run r2" in md
    assert "Baseline: run r2, the latest complete run of ft2500-sample" in md
    assert doc["baseline"]["run"] == "r2" and doc["completeness"]["complete"]
    # r3 fails at 2.5 times r2's rates: new regressions, cell by cell
    assert doc["regressions"]["new_regressions"]
    assert "**INCOMPLETE" not in md and "Complete: every cell has all its boots." in md
    ET.parse(written["junit"])
    html = written["html"].read_text()
    assert "Baseline: run r2, the latest complete run" in html
    assert 'id="new-regressions"' in html
    assert not list((lab / "reports" / "r3").glob(".*"))  # no temporary files left


def test_first_run_says_there_is_no_previous(lab, tmp_path):
    with Store(lab / "reports" / "lab.db") as store:
        written = write_reports(store, "r1", ["md", "json"], tmp_path)
    assert json.loads(written["json"].read_text())["previous"] is None
    assert "No earlier complete run of ft2500-sample" in written["md"].read_text()


def test_parse_formats():
    assert parse_formats("html, markdown,xml") == ("html", "md", "junit")
    assert parse_formats("all") == ("html", "junit", "md", "json")
    with pytest.raises(ConfigError, match=r"unknown report format 'pdf'.*html, junit, md"):
        parse_formats("html,pdf")


def test_cli_report_and_compare(lab, tmp_path, monkeypatch):
    monkeypatch.chdir(lab)
    runner = CliRunner()
    res = runner.invoke(cli, ["report", "r2", "--format", "md,json", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "summary.md" in res.output and (tmp_path / "report.json").is_file()
    res = runner.invoke(cli, ["compare", "r1", "r3"])
    assert res.exit_code == 0, res.output
    assert "**Worse**" in res.output
    res = runner.invoke(cli, ["compare", "r1", "r3", "--json"])
    assert json.loads(res.output)["worse"]


def test_cli_user_errors_are_clear(lab, tmp_path, monkeypatch, capsys):
    from harness.cli import main

    monkeypatch.chdir(lab)
    for argv, msg in ((["report", "nope"], "no database under reports/ holds run(s) nope"),
                      (["report", "r1", "--format", "pdf"], "unknown report format 'pdf'"),
                      (["report", "r1", "--db", str(tmp_path / "x.db")], "no results database"),
                      (["compare", "r1", "zz"], "holds run(s) r1, zz")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["report", "r1"])


def test_compare_fail_on_worse_exit_status(lab, monkeypatch):
    monkeypatch.chdir(lab)
    runner = CliRunner()
    assert runner.invoke(cli, ["compare", "r1", "r3", "--fail-on-worse"],
                         standalone_mode=False).return_value == 1
    assert runner.invoke(cli, ["compare", "r3", "r1", "--fail-on-worse"],
                         standalone_mode=False).return_value == 0


def test_screened_exact_tests_agree_with_boschloo_where_it_matters():
    from harness.report.compare import exact_p_values

    tables = [(0, 50, 0, 50), (3, 50, 4, 50), (1, 50, 9, 50), (0, 50, 12, 50),
              (20, 50, 22, 50), (5, 30, 5, 30), (50, 50, 50, 50)]
    screened = exact_p_values(tables, screen=0.2)
    full = [stats.exact_test(*t, "two-sided") for t in tables]
    for (p, method), (pb, mb) in zip(screened, full, strict=True):
        if method == "fisher":
            assert p >= 0.2 and p >= pb  # Fisher is never below Boschloo: conservative
        else:
            assert (p, method) == (pb, mb)
    assert [m for _, m in screened][:4] == ["none", "fisher", "boschloo", "boschloo"]
    # the same cells are significant after Holm either way
    holm_s = stats.holm([p for p, _ in screened])
    holm_f = stats.holm([p for p, _ in full])
    assert [p < 0.05 for p in holm_s] == [p < 0.05 for p in holm_f]


def test_find_database_picks_the_one_holding_the_runs(lab, tmp_path):
    from harness.report import find_database

    reports = tmp_path / "reports"
    with Store(reports / "a-other.db") as store:
        store.create_run("x1", "m", [Cell("h/g/vcpu1", "m", "h", "g", 1, 1)])
    (reports / "lab.db").symlink_to(lab / "reports" / "lab.db")
    assert find_database(["r1", "r3"], search=reports).name == "lab.db"
    assert find_database(["x1"], search=reports).name == "a-other.db"
    with pytest.raises(ConfigError, match=r"no database under .* holds run"):
        find_database(["x1", "r1"], search=reports)


def test_reports_of_a_run_with_no_boot_yet(tmp_path):
    """``harness report`` on a run that has just started: every format still writes."""
    cells = [Cell(f"h/g/vcpu{v}", "m", "h", "g", v, 5) for v in (1, 2)]
    with Store(tmp_path / "r.db") as store:
        store.create_run("empty", "m", cells)
        written = write_reports(store, "empty", out_dir=tmp_path / "out")
    doc = json.loads(written["json"].read_text())
    assert doc["run"]["finished"] is None
    assert [c["vcpu_offline_rate"]["value"] for c in doc["cells"]] == [None, None]
    assert {c["verdict"] for c in doc["cells"]} == {"undecided"}
    # a run that has not measured its cells yet: errors, never a quiet skip or pass
    root = ET.parse(written["junit"]).getroot()
    errors = root.findall(".//testcase/error")
    assert len(errors) == 2 and root.get("errors") == "2"
    assert errors[0].get("message").startswith("not measured: 0 of 5 guest boots")
    assert "0/0 (no guest boots)" in written["md"].read_text()
    assert "No boot recorded a bring-up latency" in written["html"].read_text()


def test_not_judged_cells_pass_in_junit_and_are_counted(tmp_path):
    from harness.model import BootResult, Expectation, Outcome

    cells = [Cell("h/g/vcpu2", "m", "h", "g", 2, 3,
                  expect=Expectation(vcpu_offline=None, boot_failure=None)),
             Cell("h/g/vcpu4", "m", "h", "g", 4, 3)]
    with Store(tmp_path / "r.db") as store:
        store.create_run("nj", "m", cells)
        store.record_many(BootResult("nj", c.id, i, Outcome.VCPU_OFFLINE, offline_cpus=(1,))
                          for c in cells for i in range(3))
        written = write_reports(store, "nj", ["junit", "md", "json"], tmp_path / "out")
    verdicts = [c["verdict"] for c in json.loads(written["json"].read_text())["cells"]]
    assert verdicts == ["not_judged", "fail"]
    cases = ET.parse(written["junit"]).getroot().findall(".//testcase")
    assert cases[0].find("failure") is None and cases[0].find("skipped") is None
    assert cases[1].find("failure") is not None
    assert ("**1 fail, 0 undecided, 0 pass, 0 clean** (1 not judged)"
            in written["md"].read_text())


def test_a_cell_stopped_early_shows_its_sequence_and_verdict_in_every_format(tmp_path):
    """The stored decision (verdict, boot, interval) makes every format show the
    confidence sequence, the verdict read off it, and the mark "stopped early"; a clean
    cell of the same run keeps the fixed-n interval and says "clean"."""
    from harness.adaptive import AdaptiveSettings, decide
    from harness.cli.run import result_table
    from harness.model import BootResult, Expectation, Outcome
    from harness.report.html import payload
    from harness.runner import RunSummary

    early = Cell("h/g/vcpu2", "m", "h", "g", 2, 400,
                 expect=Expectation(vcpu_offline=0.05, boot_failure=0.05))
    plain = Cell("h/g/vcpu4", "m", "h", "g", 4, 3)
    n = 120  # the sequence is below 5% from 116 clean boots on
    made = decide(stats.CellCounts(ok=n), early, AdaptiveSettings())
    assert made is not None and made.decision == "pass" and made.at_boot == n
    with Store(tmp_path / "r.db") as store:
        store.create_run("se", "m", [early, plain])
        store.record_many([*(BootResult("se", early.id, i, Outcome.OK) for i in range(n)),
                           *(BootResult("se", plain.id, i, Outcome.OK) for i in range(3))])
        store.record_decision("se", made)
        store.record_decision("se", made)  # the first one wins, no error
        assert list(store.decisions("se")) == [early.id]
        written = write_reports(store, "se", ["junit", "md", "json", "html"],
                                tmp_path / "out")
        view = build_view(store.load_run("se"))
    cs = stats.confidence_sequence(0, n)
    fixed = stats.display_interval(0, n)
    assert cs.high > fixed.high  # the two differ: what is shown matters
    c0, c1 = view.cells
    assert c0.verdict == "pass" and c0.stopped_early is not None
    assert (c0.vcpu_offline_rate.low, c0.vcpu_offline_rate.high) == (cs.low, cs.high)
    assert c0.interval == "confidence sequence" and c0.stopped_early.at_boot == n
    assert c1.verdict == "clean" and c1.stopped_early is None
    assert "no failure in 3 boots (rate < 63.2% at 95%)" in c1.judgements[0].statement
    doc = json.loads(written["json"].read_text())
    j0, j1 = doc["cells"]
    assert j0["vcpu_offline_rate"]["high"] == pytest.approx(cs.high)
    assert j0["stopped_early"] == {"decision": "pass", "at_boot": n, "outcome": made.outcome,
                                   "low": made.low, "high": made.high,
                                   "method": "confidence sequence"}
    assert j0["interval"] == "confidence sequence" and j1["stopped_early"] is None
    assert j1["verdict"] == "clean"
    case = ET.parse(written["junit"]).getroot().findall(".//testcase")[0]
    out = case.find("system-out")
    assert out is not None and out.text
    props = dict(line.split(" = ", 1) for line in out.text.splitlines() if " = " in line)
    assert props["stopped_early"] == "true" and props["stopped_at_boot"] == str(n)
    assert props["interval"] == "confidence sequence"
    assert float(props["vcpu_offline_rate_high"]) == pytest.approx(cs.high, abs=1e-6)
    md = written["md"].read_text()
    assert "**pass** (stopped early)" in md and "1 pass, 1 clean" in md
    assert payload(view)["cells"][0]["e"] is True
    assert "1 stopped early" in written["html"].read_text()
    # the terminal table: the same interval and the same mark
    summary = RunSummary("se", "m", "finished", tmp_path / "r.db", tmp_path, (early, plain),
                         {early.id: stats.CellCounts(ok=n), plain.id: stats.CellCounts(ok=3)},
                         0, 0.0, decisions={early.id: "pass"})
    from rich.console import Console

    con = Console(width=200, record=True)
    con.print(result_table(summary))
    text = con.export_text()
    assert f"[0.0%-{100 * cs.high:.1f}%]" in text and "pass (stopped early)" in text
    assert "clean" in text
