"""Writes one boot: its artifacts under the run folder, then its row through the sink.

The boot loop hands over the frozen evidence and the result judged from it; this is the
only place that turns them into files. Layout: ``<run dir>/<cell folder>/<boot index>/``
(``Cell.folder``: readable and unique per cell) with ``dmesg.txt``, ``console.log``,
``qemu.log``, ``host-dmesg.txt`` and ``versions.json`` when there is such evidence, and
``meta.json`` (the result, what each guest command did, cleanup errors).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from harness.evidence import BootEvidence
from harness.model import BootResult, Cell

ARTIFACT_FILES = {"dmesg": "dmesg.txt", "console": "console.log", "qemu_log": "qemu.log",
                  "host_dmesg": "host-dmesg.txt", "versions": "versions.json"}


class ResultSink(Protocol):
    def record(self, result: BootResult) -> None:
        """Store one boot atomically (all or nothing)."""


def boot_folder(cell: Cell, index: int) -> str:
    """One boot's folder relative to the run folder (plain strings: pathlib costs more
    than the writes in a simulated run)."""
    return f"{cell.folder}/{index}"


def artifact_names(ev: BootEvidence) -> dict[str, str]:
    """name -> path relative to the run folder, of the files ``Recorder`` writes (pure).
    dmesg.txt and console.log always (empty when nothing came); qemu.log and
    host-dmesg.txt only when there is such evidence (every file is an inode to create,
    the largest cost of a simulated boot)."""
    rel = boot_folder(ev.cell, ev.index)
    host = dict(ev.host)
    out = {name: f"{rel}/{ARTIFACT_FILES[name]}" for name in ("dmesg", "console")}
    for name in ("qemu_log", "host_dmesg", "versions"):
        if host.get(name):
            out[name] = f"{rel}/{ARTIFACT_FILES[name]}"
    out["meta"] = f"{rel}/meta.json"
    return out


_RESULT_FIELDS = tuple(f.name for f in fields(BootResult))


def meta_json(result: BootResult, evidence: dict[str, str],
              commands: list[dict[str, Any]] | None = None) -> str:
    """``meta.json``: the result's fields (findings and signatures as objects), the names
    of the evidence kept, any cleanup errors and (when given) what each guest command did;
    one line, keys sorted (``indent`` would take json's pure-Python encoder, a tenth of a
    simulated boot's cost; read it with ``jq .``)."""
    d: dict[str, Any] = {k: getattr(result, k) for k in _RESULT_FIELDS}
    d["findings"] = [vars(f) for f in result.findings]
    d["signatures"] = [vars(s) for s in result.signatures]
    d["evidence_names"] = sorted(evidence)
    d["errors"] = {k: v for k, v in evidence.items() if k.endswith("_error")}
    if commands is not None:
        d["commands"] = commands
    return json.dumps(d, default=str, sort_keys=True) + "\n"


def _command_meta(ev: BootEvidence) -> list[dict[str, Any]]:
    return [{"name": c.name, "exit_status": c.exit_status, "fault": c.fault,
             "error": c.error, "duration_s": round(c.duration_s, 3),
             "stdout_chars": len(c.stdout), "stdout_truncated": c.stdout_truncated,
             "stderr": c.stderr[:2000], "stderr_truncated": c.stderr_truncated}
            for c in ev.commands]


class Recorder:
    """Artifacts on disk, then the row (so a recorded row's files exist)."""

    def __init__(self, sink: ResultSink, run_dir: Path | str) -> None:
        self.sink = sink
        self.run_dir = str(run_dir)

    def write(self, ev: BootEvidence, result: BootResult) -> None:
        files = dict(result.artifacts) or artifact_names(ev)
        folder = os.path.join(self.run_dir, boot_folder(ev.cell, ev.index))
        os.makedirs(folder, exist_ok=True)
        host = dict(ev.host)
        texts = {"dmesg": _stdout(ev, "dmesg"), "console": ev.console,
                 "qemu_log": host.get("qemu_log", ""), "host_dmesg": host.get("host_dmesg", ""),
                 "versions": json.dumps(dict(result.extra).get("versions", {}), indent=1,
                                        sort_keys=True) + "\n"}
        for name, rel in files.items():
            if name == "meta":
                continue
            with open(os.path.join(self.run_dir, rel), "w", encoding="utf-8",
                      errors="replace") as f:
                f.write(texts.get(name, ""))
        names = dict(ev.host) | dict(ev.errors)
        with open(os.path.join(self.run_dir, files["meta"]), "w", encoding="utf-8",
                  errors="replace") as f:
            f.write(meta_json(result, names, _command_meta(ev)))

    def record(self, ev: BootEvidence, result: BootResult) -> None:
        self.write(ev, result)
        self.sink.record(result)


def _stdout(ev: BootEvidence, name: str) -> str:
    c = ev.command(name)
    return c.stdout if c is not None else ""
