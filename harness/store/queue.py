"""A run's plan as a work queue in the results database, shared by several controllers
(``harness run MATRIX --join RUN_ID`` on as many machines as wanted).

Rows, not a scheduler of our own: the database is the distributed engine.

- ``work``: one row per chunk of the plan (consecutive boots of one cell, on its host),
  in the plan's order. A controller claims the next one of a host with ``SELECT ... FOR
  UPDATE SKIP LOCKED`` (PostgreSQL; SQLite's writers take turns), marks it taken by
  itself, boots it, marks it done.
- ``slot_leases``: one row per slot of each host. A controller boots on a host only
  under a slot it leased, so the lab's ``slots`` hold across controllers.
- ``controllers``: one row per controller with a heartbeat and an expiry (the
  database's clock, so the controllers' clocks do not matter). A controller that stops
  beating (killed with -9, its machine gone) loses its leases and its taken chunks at
  expiry: another controller claims them and boots what was not recorded. A boot it had
  recorded stays (never booted again); a boot it had under way was never recorded and
  is redone; the store's first-recorded-wins rule means none is counted twice.
- ``work_log``: who ran which chunk under which slot, from when to when (the evidence
  that no host had more boots at once than its slots).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.scheduler import Chunk
from harness.store.db import Store

DEFAULT_LEASE_S = 15.0  # a controller silent this long is presumed dead


@dataclass(frozen=True)
class WorkItem:
    seq: int
    host: str
    slot: int  # the host's slot leased for it
    cell_id: str
    indices: tuple[int, ...]  # the chunk's boots still to do when it was claimed
    log_id: int


def controller_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class WorkQueue:
    """This controller's handle on the shared plan of one run (thread-safe: every call
    is one short transaction of its own)."""

    def __init__(self, store: Store, run_id: str, *, lease_s: float = DEFAULT_LEASE_S,
                 ident: str | None = None) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be > 0")
        self.store = store
        self.run_id = run_id
        self.lease_s = float(lease_s)
        self.id = ident or controller_id()
        self._now = store.dialect.now
        self._skip = store.dialect.skip_locked
        self._valid_until = 0.0  # monotonic: the lease as this process last renewed it
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.lost = False  # the lease ran out in the database: others took this one's work

    # --- the controller ----------------------------------------------------------------

    def join(self) -> None:
        """Register this controller (and start its heartbeat thread)."""
        t0 = time.monotonic()
        with self.store._write() as c:
            c.execute(f"INSERT INTO controllers (id, run_id, host, pid, started, heartbeat, "
                      f"expires) VALUES (?, ?, ?, ?, {self._now}, {self._now}, "
                      f"{self._now} + ?)", (self.id, self.run_id, socket.gethostname(),
                                            os.getpid(), self.lease_s))
        self._valid_until = t0 + self.lease_s * 0.8
        self._beat = threading.Thread(target=self._beating, name="lease-heartbeat",
                                      daemon=True)
        self._beat.start()

    def heartbeat(self) -> bool:
        """Extend this controller's lease; False if it had expired (others may have taken
        its work: it must stop booting)."""
        t0 = time.monotonic()
        with self.store._write() as c:
            n = c.execute(f"UPDATE controllers SET heartbeat = {self._now}, expires = "
                          f"{self._now} + ? WHERE id = ? AND expires > {self._now} AND "
                          "left_at IS NULL", (self.lease_s, self.id)).rowcount
        if n == 1:
            self._valid_until = t0 + self.lease_s * 0.8
            return True
        self._valid_until = 0.0
        self.lost = True
        return False

    def _beating(self) -> None:
        while not self._beat_stop.wait(self.lease_s / 4):
            try:
                if not self.heartbeat():
                    return
            except Exception:  # the database is unreachable: the lease runs out locally
                continue

    def alive(self) -> bool:
        """May this controller still start a boot? Checked before each one: a controller
        that could not renew its lease in time stops (others take its work)."""
        return time.monotonic() < self._valid_until

    def leave(self) -> None:
        """Stop beating, free this controller's slots (its taken chunks become claimable:
        it leaves only after finishing or abandoning them)."""
        self._beat_stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        with self.store._write() as c:
            c.execute(f"UPDATE controllers SET left_at = {self._now} WHERE id = ?", (self.id,))
            c.execute("UPDATE slot_leases SET controller = NULL WHERE run_id = ? AND "
                      "controller = ?", (self.run_id, self.id))
        self._valid_until = 0.0

    # --- the plan ----------------------------------------------------------------------

    def ensure_plan(self, plan: Mapping[str, Sequence[Chunk]], slots: Mapping[str, int]
                    ) -> bool:
        """Write the plan and the hosts' slots unless a controller has already (the
        first one's plan is everybody's); True if this call wrote it."""
        with self.store._write() as c:
            c.execute("SELECT id FROM runs WHERE id = ?" + (
                " FOR UPDATE" if self._skip else ""), (self.run_id,)).fetchall()
            have = c.execute("SELECT COUNT(*) FROM work WHERE run_id = ?",
                             (self.run_id,)).fetchone()[0]
            if have:
                return False
            rows = []
            seq = 0
            for host in sorted(plan):
                for chunk in plan[host]:
                    rows.append((self.run_id, seq, host, chunk.cell.id,
                                 json.dumps(list(chunk.indices))))
                    seq += 1
            if rows:
                c.executemany("INSERT INTO work (run_id, seq, host, cell_id, indices) "
                              "VALUES (?, ?, ?, ?, ?)", rows)
            c.executemany("INSERT INTO slot_leases (run_id, host, slot) VALUES (?, ?, ?) "
                          "ON CONFLICT DO NOTHING",
                          [(self.run_id, h, n) for h, k in sorted(slots.items())
                           for n in range(max(1, k))])
            return True

    def hosts(self) -> dict[str, int]:
        """The plan's hosts and their slots (as the first controller wrote them)."""
        rows = self.store._conn().execute(
            "SELECT host, COUNT(*) FROM slot_leases WHERE run_id = ? GROUP BY host",
            (self.run_id,)).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def _gone(self) -> str:
        """SQL: the controllers of this run that are dead or have left."""
        return (f"(SELECT id FROM controllers WHERE run_id = ? AND "
                f"(expires <= {self._now} OR left_at IS NOT NULL))")

    def take(self, host: str) -> WorkItem | None:
        """Lease a free slot of ``host`` and claim the next chunk of it, in one
        transaction: a chunk nobody took, or one whose controller is gone (the boots it
        recorded are left out). A slot is free when never leased, released, or its
        controller is gone. None when no slot is free or no chunk is, for now."""
        if not self.alive():
            return None
        with self.store._write() as c:
            free = c.execute(
                "SELECT slot FROM slot_leases WHERE run_id = ? AND host = ? AND "
                f"(controller IS NULL OR controller IN {self._gone()}) "
                f"ORDER BY slot LIMIT 1{self._skip}",
                (self.run_id, host, self.run_id)).fetchone()
            if free is None:
                return None
            row = c.execute(
                "SELECT seq, cell_id, indices FROM work WHERE run_id = ? AND host = ? AND "
                f"(state = 'todo' OR (state = 'taken' AND controller IN {self._gone()})) "
                f"ORDER BY seq LIMIT 1{self._skip}",
                (self.run_id, host, self.run_id)).fetchone()
            if row is None:
                return None
            slot, seq, cell_id = int(free[0]), int(row[0]), str(row[1])
            done = {r[0] for r in c.execute(
                "SELECT idx FROM boots WHERE run_id = ? AND cell_id = ? AND "
                "outcome != 'infra_error'", (self.run_id, cell_id)).fetchall()}
            todo = tuple(i for i in json.loads(row[2]) if i not in done)
            c.execute("UPDATE slot_leases SET controller = ? WHERE run_id = ? AND host = ? "
                      "AND slot = ?", (self.id, self.run_id, host, slot))
            c.execute(f"UPDATE work SET state = 'taken', controller = ?, slot = ?, "
                      f"taken = {self._now} WHERE run_id = ? AND seq = ?",
                      (self.id, slot, self.run_id, seq))
            log = c.execute(
                "INSERT INTO work_log (run_id, seq, host, slot, controller, indices, "
                f"started) VALUES (?, ?, ?, ?, ?, ?, {self._now}) RETURNING id",
                (self.run_id, seq, host, slot, self.id, json.dumps(list(todo)))).fetchone()
            return WorkItem(seq, host, slot, cell_id, todo, int(log[0]))

    def finish(self, item: WorkItem) -> bool:
        """Mark the chunk done and free its slot (False if another controller had taken
        the chunk over: this one was presumed dead; what it recorded stays, counted
        once)."""
        with self.store._write() as c:
            c.execute(f"UPDATE work_log SET ended = {self._now} WHERE id = ?", (item.log_id,))
            n = c.execute(f"UPDATE work SET state = 'done', done = {self._now} WHERE "
                          "run_id = ? AND seq = ? AND controller = ?",
                          (self.run_id, item.seq, self.id)).rowcount
            self._release(c, item)
        return bool(n == 1)

    def abandon(self, item: WorkItem) -> None:
        """Give a chunk and its slot back (this controller stops before finishing it)."""
        with self.store._write() as c:
            c.execute(f"UPDATE work_log SET ended = {self._now} WHERE id = ?", (item.log_id,))
            c.execute("UPDATE work SET state = 'todo', controller = NULL WHERE run_id = ? "
                      "AND seq = ? AND controller = ? AND state = 'taken'",
                      (self.run_id, item.seq, self.id))
            self._release(c, item)

    def _release(self, c: Any, item: WorkItem) -> None:
        c.execute("UPDATE slot_leases SET controller = NULL WHERE run_id = ? AND host = ? "
                  "AND slot = ? AND controller = ?",
                  (self.run_id, item.host, item.slot, self.id))

    def left(self, host: str | None = None) -> int:
        """Chunks not done (of ``host``)."""
        q = "SELECT COUNT(*) FROM work WHERE run_id = ? AND state != 'done'"
        args: tuple[Any, ...] = (self.run_id,)
        if host is not None:
            q, args = q + " AND host = ?", (self.run_id, host)
        return int(self.store._conn().execute(q, args).fetchone()[0])

    def claim_finish(self) -> bool:
        """After the last chunk: True for exactly one controller (it marks the run
        finished and writes the reports)."""
        with self.store._write() as c:
            n = c.execute(f"UPDATE runs SET status = 'finished', finished = {self._now} "
                          "WHERE id = ? AND status = 'running'", (self.run_id,)).rowcount
        return bool(n == 1)

    def controllers(self) -> list[dict[str, Any]]:
        rows = self.store._conn().execute(
            f"SELECT id, host, pid, started, heartbeat, expires, left_at, "
            f"expires > {self._now} AND left_at IS NULL AS live FROM controllers "
            "WHERE run_id = ? ORDER BY started", (self.run_id,)).fetchall()
        return [{"id": r[0], "host": r[1], "pid": r[2], "started": r[3], "heartbeat": r[4],
                 "expires": r[5], "left": r[6], "live": bool(r[7])} for r in rows]
