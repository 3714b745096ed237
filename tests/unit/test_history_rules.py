"""Nights I rules on a real SQLite store: completeness of a run, the baseline rule and
the nightly regression rule (pure functions, checked against hand-computed cases)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from scipy.stats import fisher_exact

from harness.history import (
    CellSnapshot,
    choose_baseline,
    find_baseline,
    load_status,
    regressions,
)
from harness.history.regress import min_p_value, tarone_family
from harness.model import BootResult, Cell, Outcome, Signature
from harness.stats import CellCounts
from harness.store import Store

CELLS = [Cell(id=f"h{h}/g/vcpu4", matrix="nightly", host=f"h{h}", guest="g", vcpus=4,
              boots=10) for h in (1, 2)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "lab.db", durable=False)
    yield s
    s.close()


def night(store: Store, rid: str, t: float, *, boots: int = 10, cells: list[Cell] = CELLS,
          fail: int = 0, status: str = "finished", record: int | None = None,
          aside: str | None = None) -> str:
    cs = [replace(c, boots=boots) for c in cells]
    store.create_run(rid, "nightly", cs, started=t)
    results = []
    for c in cs:
        for i in range(boots if record is None else record):
            bad = i < fail
            results.append(BootResult(rid, c.id, i, Outcome.VCPU_OFFLINE if bad else
                                      Outcome.OK, host=c.host, guest=c.guest, vcpus=4,
                                      signatures=(Signature("k", "vCPU failed"),) if bad
                                      else ()))
    store.record_many(results)
    if aside:
        store.set_host_state(rid, aside, "set_aside", "unreachable")
    store.mark_finished(rid, status, finished=t + 1)
    return rid


def test_completeness_says_why(store: Store) -> None:
    night(store, "ok", 1)
    night(store, "cut", 2, status="interrupted", record=4)
    night(store, "aside", 3, status="incomplete", aside="h2")
    assert load_status(store, "ok").complete
    cut = load_status(store, "cut")
    assert not cut.complete
    assert cut.reasons == ("interrupted", "2 cells of 2 unfinished")
    assert cut.unfinished == (("h1/g/vcpu4", 4, 10), ("h2/g/vcpu4", 4, 10))
    aside = load_status(store, "aside")
    assert aside.hosts_set_aside == (("h2", "unreachable"),)
    assert "host h2 set aside: unreachable" in aside.reasons
    # maximum 0 and no failure: "clean" (issue 15), never "pass"
    assert load_status(store, "ok").verdicts["clean"] == 2


def test_baseline_passes_over_interrupted_subset_short_and_pinned(store: Store) -> None:
    night(store, "n1", 1)
    night(store, "n2", 2, status="interrupted", record=3)
    night(store, "n3", 3, boots=1)  # a --boots 1 try
    night(store, "n4", 4, cells=CELLS[:1])  # a -k subset
    night(store, "n5", 5, aside="h1", status="incomplete")
    night(store, "n6", 6)
    choice = find_baseline(store, "n6")
    assert choice.run_id == "n1"
    assert [r for r, _ in choice.passed_over] == ["n5", "n4", "n3", "n2"]
    assert "interrupted" in dict(choice.passed_over)["n2"]
    assert "fewer boots: 1 < 10" in dict(choice.passed_over)["n3"]
    assert "other cells" in dict(choice.passed_over)["n4"]
    assert "latest complete run" in choice.reason and "n2 (not complete" in choice.reason
    # the subset night itself compares with the full night before it? No: other cells
    assert find_baseline(store, "n4").run_id is None
    # a short night may compare with a full one
    assert find_baseline(store, "n3").run_id == "n1"
    assert find_baseline(store, "n1").run_id is None
    store.pin_baseline("n3")
    pinned = find_baseline(store, "n6")
    assert (pinned.run_id, pinned.pinned) == ("n3", True)
    assert "pinned" in pinned.reason and "fewer boots" in pinned.reason
    assert find_baseline(store, "n2").run_id == "n1"  # a pin later than the run is ignored
    assert store.unpin_baseline("nightly") == "n3"
    assert find_baseline(store, "n6").run_id == "n1"


def snap(cid: str, ok: int, off: int, verdict: str, sigs: tuple[tuple[str, int], ...] = (),
         bf: int = 0) -> CellSnapshot:
    return CellSnapshot(cid, CellCounts(ok=ok, vcpu_offline=off, boot_failure=bf), verdict,
                        sigs)


def test_min_p_and_tarone() -> None:
    # every event in "now": Fisher's one-sided p of that table
    expect = float(fisher_exact([[3, 0], [97, 100]], alternative="greater").pvalue)
    assert min_p_value(3, 100, 0, 100) == pytest.approx(expect)
    assert min_p_value(0, 100, 0, 100) == 1.0
    assert min_p_value(1, 100, 0, 100) == pytest.approx(0.5)
    # 20 tables that cannot be significant do not dilute the one that can
    assert tarone_family([1e-9] + [0.5] * 20, 0.05) == [True] + [False] * 20


def test_pass_to_fail_is_a_regression_on_its_own() -> None:
    r = regressions([snap("c", 100, 0, "pass")], [snap("c", 95, 5, "fail", (("x", 5),))],
                    alpha=0.05)
    (c,) = r.cells
    assert c.status == "new_regression" and r.alarm
    assert c.reasons[0] == "verdict pass -> fail"


def test_worse_rate_and_new_signature_and_the_quiet_cases() -> None:
    before = [snap("worse", 196, 4, "fail", (("a", 4),)), snap("same", 180, 20, "fail",
                                                                  (("a", 20),)),
              snap("rec", 190, 10, "fail", (("a", 10),)), snap("sig", 180, 20, "fail",
                                                                 (("a", 20),)),
              snap("rare", 180, 20, "fail", (("a", 20),))]
    now = [snap("worse", 180, 20, "fail", (("a", 20),)), snap("same", 178, 22, "fail",
                                                                 (("a", 22),)),
           snap("rec", 200, 0, "pass"), snap("sig", 170, 20, "fail", (("a", 20), ("b", 10)),
                                             bf=10),
           snap("rare", 179, 21, "fail", (("a", 20), ("c", 1)))]
    r = regressions(before, now, alpha=0.05)
    status = {c.cell_id: c.status for c in r.cells}
    assert status == {"worse": "new_regression", "same": "still_failing", "rec": "recovery",
                      "sig": "new_regression", "rare": "still_failing"}
    by = {c.cell_id: c for c in r.cells}
    assert by["worse"].worse[0].subject == "vcpu_offline"
    assert any("new signature 'b'" in x for x in by["sig"].reasons)
    (rare,) = by["rare"].new_signatures  # listed, but 1 boot of 200 cannot alarm
    assert rare.title == "c" and not rare.in_family and not rare.significant
    assert r.family < r.tests
    assert [c.cell_id for c in r.new_regressions] == ["worse", "sig"]
    assert [c.cell_id for c in r.recoveries] == ["rec"]


def test_not_measured_and_new_cells() -> None:
    r = regressions([snap("a", 10, 0, "pass")], [snap("a", 0, 0, "undecided"),
                                                 snap("b", 10, 0, "pass")])
    assert [c.status for c in r.cells] == ["not_measured", "new_cell"]
    assert not r.alarm


def test_choose_baseline_without_earlier_runs(store: Store) -> None:
    night(store, "only", 1)
    choice = choose_baseline(load_status(store, "only"), [])
    assert choice.run_id is None and "no earlier complete run" in choice.reason


def test_change_point_finds_the_first_bad_night_and_skips_unmeasured_nights() -> None:
    from harness.stats.changepoint import first_bad

    cp = first_bad([0, 0, 0, 0, 0, 9, 8, 0, 10, 9], [30, 30, 30, 12, 30, 30, 30, 0, 30, 30])
    assert cp.index == 5 and cp.confidence > 0.99 and cp.p_value < 1e-6
    assert cp.before == 0.0 and cp.after == pytest.approx(36 / 120)
    assert cp.posterior[7] == 0.0  # an unmeasured night is never the first bad one
    # the regression starts on a night nobody measured: the next measured night is named
    late = first_bad([0, 0, 0, 0, 9, 8], [30, 30, 30, 0, 30, 30])
    assert late.index == 4
    # a constant rate: no change; a drop is not a "bad" night
    assert first_bad([3, 2, 4, 3, 2, 3], [30] * 6).p_value > 0.05
    assert first_bad([9, 8, 9, 0, 0, 0], [30] * 6).index is None
    assert first_bad([1], [30]).index is None


def test_a_cell_stopped_early_is_done_and_judged_on_its_sequence(store: Store) -> None:
    """A run cut short for one cell by adaptive stopping: the stored decision makes the
    cell done (not "unfinished") and its verdict the confidence sequence's."""
    from harness.adaptive import CellDecision

    night(store, "cut", 1, status="interrupted", record=4, fail=1)
    before = load_status(store, "cut")
    assert ("h1/g/vcpu4", 4, 10) in before.unfinished
    store.record_decision("cut", CellDecision("h1/g/vcpu4", "fail", 4, "vcpu_offline",
                                              0.01, 0.9, 0.95))
    after = load_status(store, "cut")
    assert [u[0] for u in after.unfinished] == ["h2/g/vcpu4"]
    assert after.verdicts["fail"] == 2  # 1/4 fails a maximum of 0 either way
