"""Time, size and memory of the reports of a big run: 1,000 cells x 50 boots by default.

    python benchmarks/bench_report.py [--hosts 10] [--boots 50] [--seed 1] [--browser]

Records two synthetic FT-2500-like runs of a 10 hosts x 4 guests x 5 vCPU counts x 5
memory sizes matrix in a fresh SQLite store in a temp dir (dmesg/console artifacts for
every boot that was not ok), then, in a fresh child process, writes the four reports of
the second run with the previous-run section (``write_reports``, as ``harness run`` does
at the end) and prints the wall time of each phase, the file sizes and the child's peak
RSS. ``--browser`` also loads the HTML in headless Chromium and reports the time to the
load event and to the first heatmap (DevTools protocol).
Targets: the HTML below 25 MB and all four reports in under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(db: Path, out: Path) -> None:
    """The measured part, in a fresh process (so its peak RSS is the report's alone)."""
    t0 = time.perf_counter()
    from harness.report.build import build_view
    from harness.report.compare import diff_runs
    from harness.report.write import FILE_NAMES, WRITERS, artifacts_root
    from harness.store import Store

    times = {}
    with Store(db, create=False) as store:
        t = time.perf_counter()
        data = store.load_run("bench-2")
        prev = store.load_run("bench-1", with_findings=False)
        times["load both runs from SQLite"] = time.perf_counter() - t
        t = time.perf_counter()
        diff = diff_runs(prev, data)
        times["previous-run comparison (exact tests, Holm)"] = time.perf_counter() - t
        t = time.perf_counter()
        view = build_view(data, previous=prev, artifacts_root=artifacts_root(store, data),
                          report_dir=out)
        times["build view (comparisons cached, log context)"] = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    for fmt, writer in WRITERS.items():
        t = time.perf_counter()
        writer(view, out / FILE_NAMES[fmt])
        times[f"write {fmt}"] = time.perf_counter() - t
    times["total in the report process"] = time.perf_counter() - t0
    print(json.dumps({"times": times,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "worse": len(diff.worse), "better": len(diff.better)}))


def record(db: Path, reports: Path, hosts: int, boots: int, seed: int) -> tuple[int, float]:
    from harness.report.sample import GUESTS, record_sample_run
    from harness.store import Store

    t = time.perf_counter()
    with Store(db) as store:
        kw = {"hosts": hosts, "guests": GUESTS, "vcpus": (2, 4, 8, 16, 32),
              "extra": (1024, 2048, 4096, 8192, 16384), "boots": boots, "ok_artifacts": False}
        cells = record_sample_run(store, "bench-1", reports / "bench-1", seed=seed,
                                  started=1000.0, **kw)
        record_sample_run(store, "bench-2", reports / "bench-2", seed=seed + 1, scale=1.3,
                          started=2000.0, **kw)
    return len(cells), time.perf_counter() - t


def browser(html: Path) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
    import urllib.request

    from test_report_browser import CHROMIUM, FLAGS, Page  # type: ignore[import-not-found]

    profile = tempfile.mkdtemp(prefix="hb-bench-chromium-")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        while not (port_file.exists() and port_file.read_text().strip()):
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        page = Page(target["webSocketDebuggerUrl"])
        page.send("Page.enable")
        page.send("Runtime.enable")
        t = time.perf_counter()
        page.send("Page.navigate", url=html.as_uri())
        page.wait_for("Page.loadEventFired", timeout=120)
        load = time.perf_counter() - t
        boxes = page.js("document.querySelectorAll('#heatmap td.hm').length")
        t = time.perf_counter()
        page.js("""(() => { const s = document.getElementById('pivot-rows');
                  s.value = 'memory_mib'; s.dispatchEvent(new Event('change')); })()""")
        pivot = time.perf_counter() - t
        t = time.perf_counter()
        page.js("document.querySelector('#heatmap td.hm').click()")
        drill = time.perf_counter() - t
        errors = page.errors()
        page.ws.close()
        return {"load event s": round(load, 3), "heatmap boxes": boxes,
                "re-pivot s": round(pivot, 3), "drill-down s": round(drill, 3),
                "console errors": len(errors)}
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, default=10, help="x 100 cells (default 10: 1,000)")
    ap.add_argument("--boots", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--browser", action="store_true", help="also load it in headless Chromium")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print it")
    ap.add_argument("--child", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    tmp = Path(tempfile.mkdtemp(prefix="hb-bench-report-"))
    try:
        db, reports = tmp / "reports" / "bench.db", tmp / "reports"
        ncells, rec_s = record(db, reports, args.hosts, args.boots, args.seed)
        out = reports / "bench-2"
        res = subprocess.run([sys.executable, __file__, "--child", str(db), str(out)],
                             check=True, capture_output=True, text=True)
        measured = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"bench_report: {ncells} cells x {args.boots} boots, 2 runs "
              f"(python {platform.python_version()}, {platform.machine()}, "
              f"{os.cpu_count()} cpus)")
        print(f"  command: python benchmarks/bench_report.py --hosts {args.hosts} "
              f"--boots {args.boots} --seed {args.seed}" + (" --browser" if args.browser else ""))
        print(f"  recording both runs (setup, not the report): {rec_s:.1f} s; "
              f"database {db.stat().st_size / 1e6:.1f} MB")
        for name, secs in measured["times"].items():
            print(f"  {name:52} {secs:8.2f} s")
        print(f"  peak RSS of the report process: {measured['maxrss_kib'] / 1024:.0f} MiB")
        print(f"  previous run: {measured['worse']} cells x outcomes significantly worse, "
              f"{measured['better']} better")
        from harness.report.write import FILE_NAMES

        for fmt, name in FILE_NAMES.items():
            print(f"  {fmt:5} {name:12} {(out / name).stat().st_size / 1e6:8.2f} MB")
        if args.browser:
            for k, v in browser(out / FILE_NAMES["html"]).items():
                print(f"  chromium: {k:20} {v}")
        if args.keep:
            print(f"  kept: {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
