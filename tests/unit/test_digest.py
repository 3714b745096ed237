"""The digest's decisions (pure): what is news and what is known."""

from __future__ import annotations

from harness.history import CellRegression, Regressions
from harness.knownissues import KnownIssue, KnownIssues
from harness.notify.digest import CellFacts, DigestInput, build_digest

LATE = "CPU#: failed to come online"
PANIC = "Kernel panic - not syncing: Attempted to kill init!"


def _input(cells: list[CellRegression], facts: dict[str, CellFacts],
           baseline_titles: frozenset[str] = frozenset({LATE})) -> DigestInput:
    reg = Regressions("n2", "n1", "the latest complete run", "m", 0.05, tuple(cells))
    return DigestInput(reg, facts, baseline_titles)


def test_known_signatures_silence_and_unknown_ones_alarm():
    cells = [CellRegression("a/es11/vcpu4", "new_regression", "pass", "fail",
                            ("verdict pass -> fail",)),
             CellRegression("b/es11/vcpu4", "new_regression", "pass", "fail",
                            ("verdict pass -> fail",)),
             CellRegression("c/es11/vcpu4", "still_failing", "fail", "fail"),
             CellRegression("d/es11/vcpu4", "recovery", "fail", "pass", ("verdict fail -> pass",))]
    facts = {"a/es11/vcpu4": CellFacts("a", ((LATE, 5),)),
             "b/es11/vcpu4": CellFacts("b", ((LATE, 3), (PANIC, 1))),
             "c/es11/vcpu4": CellFacts("c", ((LATE, 9),)),
             "d/es11/vcpu4": CellFacts("d")}
    known = KnownIssues((KnownIssue("late", LATE, "EAS-1"),))
    d = build_digest(_input(cells, facts), known)
    # a: every signature known -> known regression; b: the panic is not known -> news
    assert [i.cell_id for i in d.known_regressions] == ["a/es11/vcpu4"]
    assert [i.cell_id for i in d.new_regressions] == ["b/es11/vcpu4"]
    assert [s.title for s in d.new_signatures] == [PANIC]  # never in the baseline run
    assert d.still_failing == 1 and d.still_failing_known == 1
    assert [i.cell_id for i in d.recoveries] == ["d/es11/vcpu4"]
    assert d.alarm and d.subject().startswith("[m] 1 new regression, 1 new signature, 1 recovery")
    # without any known issue both regressions are news
    assert len(build_digest(_input(cells, facts), KnownIssues()).new_regressions) == 2


def test_a_fixed_issue_seen_again_is_news_and_named():
    cells = [CellRegression("a/es11/vcpu4", "new_regression", "pass", "fail", ("x",))]
    facts = {"a/es11/vcpu4": CellFacts("a", ((PANIC, 2),))}
    known = KnownIssues((KnownIssue("panic", PANIC, "https://bugs/9", state="fixed"),))
    d = build_digest(_input(cells, facts), known)
    assert d.alarm and d.new_regressions[0].reopened[0].bug == "https://bugs/9"
    assert d.new_signatures[0].reopened[0].id == "panic"
    assert "seen again after fix: panic https://bugs/9" in d.text()


def test_nothing_new_sends_nothing_and_a_first_night_has_no_new_signatures():
    cells = [CellRegression("a/es11/vcpu4", "still_failing", "fail", "fail")]
    facts = {"a/es11/vcpu4": CellFacts("a", ((PANIC, 2),))}
    d = build_digest(_input(cells, facts, frozenset({PANIC})), KnownIssues())
    assert not d.alarm and not d.worth_sending and "nothing new" in d.subject()
    first = Regressions("n1", None, "no earlier complete run", "m", 0.05, ())
    d1 = build_digest(DigestInput(first, facts), KnownIssues())
    assert not d1.new_signatures and not d1.alarm


def test_an_incomplete_night_is_said_and_sent(tmp_path):
    from harness.notify.digest import from_store
    from harness.report.sample import record_sample_run
    from harness.store import Store

    with Store(tmp_path / "lab.db") as store:
        for i, rid in enumerate(("r1", "r2")):
            record_sample_run(store, rid, tmp_path / rid, hosts=2, guests=("es11",),
                              vcpus=(4,), boots=10, started=1_795_000_000 + i * 86400)
        store.mark_finished("r2", status="interrupted")
        d = build_digest(from_store(store, "r2", base_url="https://lab/h"), KnownIssues())
    assert d.baseline_id == "r1"
    assert any("interrupted" in why for why in d.incomplete), d.incomplete
    assert d.worth_sending and "INCOMPLETE NIGHT" in d.text()
    assert ("report", "https://lab/h/r2/report.html") in d.links
