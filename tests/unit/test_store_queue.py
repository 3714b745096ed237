"""The work queue of ``--join`` on both databases: two controllers share a plan, a host's
slots hold across them, and a controller whose lease runs out leaves its chunk (minus the
boots it recorded) to the other."""

from __future__ import annotations

import time
from pathlib import Path

from harness.model import BootResult, Cell, Outcome
from harness.scheduler import plan_chunks
from harness.store import Store
from harness.store.queue import WorkQueue

CELLS = [Cell(id=f"h/g{c}/vcpu4", matrix="m", host="h", guest=f"g{c}", vcpus=4, boots=4)
         for c in range(3)]


def test_two_controllers_share_a_plan_within_the_slots(db_target: Path | str) -> None:
    with Store(db_target) as store:
        store.create_run("r", "m", CELLS)
        a, b = WorkQueue(store, "r", lease_s=30), WorkQueue(store, "r", lease_s=30)
        plan = plan_chunks(CELLS, chunk_size=2, seed=1)
        assert a.ensure_plan(plan, {"h": 2}) is True
        assert b.ensure_plan(plan, {"h": 2}) is False  # the first one's plan is everybody's
        assert a.hosts() == {"h": 2} and a.left() == 6
        a.join()
        b.join()
        try:
            one, two = a.take("h"), b.take("h")
            assert one is not None and two is not None
            assert {one.slot, two.slot} == {0, 1} and one.seq != two.seq
            assert a.take("h") is None and b.take("h") is None  # both slots are leased
            assert a.finish(one) and a.left("h") == 5
            three = b.take("h")  # the freed slot, the next chunk
            assert three is not None and three.slot == one.slot
            seen = {one.seq, two.seq, three.seq}
            for q, item in ((b, two), (b, three)):
                assert q.finish(item)
            while (item := a.take("h")) is not None:
                assert item.seq not in seen
                seen.add(item.seq)
                a.finish(item)
            assert seen == set(range(6)) and a.left() == 0
            assert a.claim_finish() is True and b.claim_finish() is False
            assert store.get_run("r").status == "finished"
        finally:
            a.leave()
            b.leave()


def test_a_silent_controller_leaves_its_chunk_to_the_others(db_target: Path | str) -> None:
    with Store(db_target) as store:
        store.create_run("r", "m", CELLS[:1])
        dead, live = WorkQueue(store, "r", lease_s=1.0), WorkQueue(store, "r", lease_s=30)
        dead.ensure_plan(plan_chunks(CELLS[:1], chunk_size=4, seed=1), {"h": 1})
        dead.join()
        live.join()
        try:
            item = dead.take("h")
            assert item is not None and item.indices == (0, 1, 2, 3)
            store.record(BootResult("r", CELLS[0].id, 0, Outcome.OK))  # it recorded one boot
            dead._beat_stop.set()  # then fell silent (as killed with -9)
            assert live.take("h") is None  # its lease still holds the host's only slot
            time.sleep(1.3)
            assert not dead.alive()  # it would start no boot any more
            again = live.take("h")
            assert again is not None and again.seq == item.seq
            assert again.indices == (1, 2, 3)  # the recorded boot is not booted again
            assert live.finish(again)
            assert dead.finish(item) is False  # too late: the chunk is another's now
            assert dead.heartbeat() is False and dead.lost
            ran = store._conn().execute("SELECT controller, indices, ended FROM work_log "
                                        "ORDER BY id").fetchall()
            assert [(r[0], r[1]) for r in ran] == [(dead.id, "[0, 1, 2, 3]"),
                                                   (live.id, "[1, 2, 3]")]
        finally:
            live.leave()
