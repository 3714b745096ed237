"""A sink for tests: boot results as JSON lines (the store, ``harness.store.Store``, is the
product's sink; the protocol is ``harness.store.recorder.ResultSink``)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path

from harness.model import BootResult


class JsonlSink:
    """Appends one JSON object per boot to a file; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, result: BootResult) -> None:
        line = json.dumps(asdict(result), default=str, sort_keys=True)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    def recorded(self, run_id: str, cell_id: str) -> set[int]:
        if not self.path.exists():
            return set()
        out = set()
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    d = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: that boot is re-done
                if d.get("run_id") == run_id and d.get("cell_id") == cell_id:
                    out.add(int(d["index"]))
        return out
