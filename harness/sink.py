"""Where boot results go. The SQLite store (``store.py``) is the default sink; the
JSON-lines sink is for quick runs and debugging."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from harness.model import BootResult


class ResultSink(Protocol):
    def record(self, result: BootResult) -> None:
        """Store one boot atomically (all or nothing)."""

    def recorded(self, run_id: str, cell_id: str) -> set[int]:
        """Boot indices of the cell already recorded for this run (to resume)."""


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
