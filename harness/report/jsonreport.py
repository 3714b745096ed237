"""The JSON report: the issue's schema, exactly, plus the previous-run section.

``{"run": {"id", "matrix", "started", "finished"}, "cells": [...], "comparisons": [...],
"previous": {...} | null, "baseline": {"run", "why"}, "regressions": {...} | null,
"completeness": {...}}``. Cell counts are boots; infrastructure errors are counted in
``boots`` and ``infra_error`` but left out of the rates' denominators.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report.view import CellChange, CellView, Comparison, Rate, RunDiff, RunView


def cell_dict(c: CellView) -> dict[str, Any]:
    return {
        "id": c.id,
        "host": c.host,
        "guest": c.guest,
        "vcpus": c.vcpus,
        "boots": c.boots,
        "ok": c.ok,
        "vcpu_offline": c.vcpu_offline,
        "boot_failure": c.boot_failure,
        "infra_error": c.infra_error,
        "vcpu_offline_rate": c.vcpu_offline_rate.as_dict(),
        "boot_failure_rate": c.boot_failure_rate.as_dict(),
        "signatures": [{"title": s.title, "count": s.count, "known": list(s.known)}
                       for s in c.signatures],
        "verdict": c.verdict,
        "versions": dict(c.versions),
        "interval": c.interval,
        "stopped_early": ({"decision": c.stopped_early.decision,
                           "at_boot": c.stopped_early.at_boot,
                           "outcome": c.stopped_early.outcome,
                           "low": c.stopped_early.low, "high": c.stopped_early.high,
                           "method": c.stopped_early.method}
                          if c.stopped_early else None),
        "statements": [j.claim or j.statement for j in c.judgements],
    }


def _group(label: str, r: Rate) -> dict[str, Any]:
    return {"label": label, "k": r.k, "n": r.n, **r.as_dict()}


def comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "title": c.title,
        "outcome": c.outcome,
        "axis": c.axis,
        "within": c.within,
        "a": _group(c.a_label, c.a),
        "b": _group(c.b_label, c.b),
        "difference": c.difference.as_dict(),
        "test": c.test,
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "significant": c.significant,
    }


def _change(c: CellChange) -> dict[str, Any]:
    return {
        "cell": c.cell_id,
        "outcome": c.outcome,
        "previous": {"k": c.a.k, "n": c.a.n, **c.a.as_dict()},
        "current": {"k": c.b.k, "n": c.b.n, **c.b.as_dict()},
        "p_value": c.p_value,
        "p_adjusted": c.p_adjusted,
        "direction": c.direction,
        "test": c.test,
    }


def diff_dict(d: RunDiff) -> dict[str, Any]:
    return {
        "previous_run": d.a_id,
        "run": d.b_id,
        "alpha": d.alpha,
        "worse": [_change(c) for c in d.worse],
        "better": [_change(c) for c in d.better],
        "signatures": [
            {"title": s.title, "previous": s.a_count, "previous_boots": s.a_boots,
             "current": s.b_count, "current_boots": s.b_boots, "p_value": s.p_value,
             "p_adjusted": s.p_adjusted, "significant": s.significant,
             "direction": s.direction, "new": s.new, "gone": s.gone}
            for s in d.flagged_signatures
        ],
        "only_in_previous": list(d.only_in_a),
        "only_in_current": list(d.only_in_b),
    }


def to_json(view: RunView) -> dict[str, Any]:
    return {
        "run": {"id": view.id, "matrix": view.matrix, "started": view.started,
                "finished": view.finished},
        "cells": [cell_dict(c) for c in view.cells],
        "comparisons": [comparison_dict(c) for c in view.comparisons],
        "previous": diff_dict(view.previous) if view.previous else None,
        "baseline": {"run": view.regressions.baseline_id if view.regressions else None,
                     "why": view.baseline_reason},
        "regressions": view.regressions.as_dict() if view.regressions else None,
        "completeness": completeness_dict(view),
        "hosts": [{"name": h.name, "attributes": dict(h.attrs), "facts": dict(h.facts),
                   "source": h.source, **({"error": h.error} if h.error else {})}
                  for h in view.hosts],
        "host_delay": [{"cell": p.cell, "index": p.index, "kind": p.kind, "cpu": p.cpu,
                        "host_delay_s": p.host_delay_s, "latency_s": p.latency_s,
                        "outcome": p.outcome} for p in view.delay_points],
    }


def completeness_dict(view: RunView) -> dict[str, Any] | None:
    st = view.completeness
    if st is None:
        return None
    return {"complete": st.complete, "status": st.status, "why": list(st.reasons),
            "hosts_set_aside": [{"host": h, "why": w} for h, w in st.hosts_set_aside],
            "unfinished_cells": [{"cell": c, "guest_boots": n, "planned": p}
                                 for c, n, p in st.unfinished],
            "infra_errors_by_host": dict(st.infra_by_host)}


def write_json(view: RunView, path: Path) -> Path:
    path.write_text(json.dumps(to_json(view), indent=1, allow_nan=False) + "\n",
                    encoding="utf-8")
    return path
