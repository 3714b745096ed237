"""``harness bisect CAMPAIGN [--json] [--resume ID]``: find the build that made a flaky
failure appear (docs/bisect.md).

Exit status: 0 culprit found at the target confidence, 3 stopped before it (budget, no
usable build or host; resume or raise the budget), 130 interrupted (resume it), 2 a
mistake in the input.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from harness.bisect.build import Build
from harness.bisect.builder import BuildOutcome
from harness.bisect.campaign import Campaign, load_campaign
from harness.bisect.html import write_bisect_html
from harness.bisect.loop import BisectOptions, BisectResult, BisectRunner, RoundDone
from harness.bisect.summary import Summary, summarize
from harness.store.target import describe, parse_target


def result_json(res: BisectResult, summary: Summary, campaign: Campaign | None = None
                ) -> dict[str, Any]:
    post = res.posterior
    revs = ({b.name: b.rev for b in campaign.build.builds}
            if campaign is not None and campaign.build is not None else {})
    return {
        "culprit": res.culprit,
        "culprit_index": post.best,
        "probability": post.probability,
        "boots": post.total_boots,
        "campaign_boots": res.campaign_boots,
        "infra_skips": res.infra_skips,
        "status": res.status,
        "run_id": res.run_id,
        "db": describe(res.db),
        "rounds": res.rounds,
        "baseline_weight": post.baseline_weight,
        "prior": res.prior,
        "credible_set": [res.builds[i] for i in summary.credible_set],
        "at_culprit": _counts(summary.at_culprit),
        "before_culprit": _counts(summary.before_culprit),
        "p_culprit_vs_before": summary.p_culprit_vs_before,
        "second_change": [
            {"side": ch.side, "log10_bayes_factor": ch.log10_bayes_factor,
             "suspicious": ch.suspicious,
             "split": None if ch.split is None else res.builds[ch.split],
             "p_homogeneity": ch.p_homogeneity} for ch in summary.checks],
        "set_aside": res.set_aside,
        "builds": [{"name": b, "boots": post.boots[i], "failures": post.failures[i],
                    "posterior": post.culprit[i], **({"rev": revs[b]} if b in revs else {})}
                   for i, b in enumerate(res.builds)],
    }


def _counts(c: Any) -> dict[str, Any]:
    return {"boots": c.boots, "failures": c.failures, "low": c.low, "high": c.high}


def _ci(c: Any) -> str:
    if not c.boots:
        return "no boots"
    return f"{c.failures}/{c.boots} = {c.rate:.1%} (95% CI {c.low:.1%}-{c.high:.1%})"


def print_result(console: Console, res: BisectResult, s: Summary) -> None:
    post = res.posterior
    table = Table(title=f"bisect run {res.run_id}: {res.status}", title_justify="left")
    for col in ("build", "boots", "failures", "rate", "P(culprit)", ""):
        table.add_column(col, justify="left" if col in ("build", "") else "right")
    for i, b in enumerate(res.builds):
        if not post.boots[i] and post.culprit[i] < 0.001:
            continue
        bar = "#" * round(30 * post.culprit[i])
        rate = f"{post.failures[i] / post.boots[i]:.1%}" if post.boots[i] else "-"
        style = "bold" if i == post.best else None
        table.add_row(b, str(post.boots[i]), str(post.failures[i]), rate,
                      f"{post.culprit[i]:.3f}", bar, style=style)
    console.print(table)
    c = post.best
    console.print(f"culprit: [bold]{res.culprit}[/] (build {c}), posterior "
                  f"{post.probability:.3f}; credible set "
                  f"{', '.join(res.builds[i] for i in s.credible_set)}")
    console.print(f"  at {res.culprit}: {_ci(s.at_culprit)}")
    if c > 0:
        console.print(f"  at {res.builds[c - 1]}: {_ci(s.before_culprit)}; Fisher exact "
                      f"(culprit fails more) p = {s.p_culprit_vs_before:.2g} (descriptive)")
    console.print(f"  builds from the culprit on: {_ci(s.bad_side)}; before: "
                  f"{_ci(s.good_side)}; p = {s.p_bad_vs_good:.2g} (descriptive)")
    console.print("  (the p-values are descriptive: the split was chosen from the same boots, "
                  "so they are not tests; the posterior is the claim)")
    console.print(f"  P(good builds fail too) = {post.baseline_weight:.3f}; {res.prior}")
    for ch in s.checks:
        if ch.split is None:
            continue
        verdict = ("[bold red]second change point likely[/]" if ch.suspicious
                   else "one rate")
        console.print(f"  {ch.side} side: {verdict} (log10 Bayes factor "
                      f"{ch.log10_bayes_factor:+.1f}, most likely at "
                      f"{res.builds[ch.split]}; homogeneity p = {ch.p_homogeneity:.2g})")
    console.print(f"boots: {post.total_boots} known, {res.campaign_boots} by this campaign, "
                  f"{res.infra_skips} infrastructure errors skipped, {res.rounds} rounds, "
                  f"{res.elapsed_s:.1f} s")
    if post.failures[-1] == 0:
        console.print(f"[yellow]note:[/] the known-bad build {res.builds[-1]} has no recorded "
                      "failure: the campaign only assumes it is bad")
    for what, why in res.set_aside.items():
        console.print(f"  set aside: {what}: {why}")
    if res.status != "found":
        console.print(f"not decided yet: continue with --resume {res.run_id}")


@click.command()
@click.argument("campaign", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--resume", metavar="RUN_ID", help="Continue a campaign's run.")
@click.option("--run-id", help="Id of a new run (default: bisect-<name>-<time>).")
@click.option("--time-scale", type=float, default=0.0, show_default=True,
              help="Simulated hosts: 0 = no waiting, 1 = real boot durations.")
@click.option("--db", metavar="FILE|URL",
              help="Results database: a file or postgresql:// URL (default: $VMBH_DB, else "
                   "the lab's, else reports/<lab>.db).")
@click.option("--reports-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("reports"), show_default=True)
@click.option("--max-rounds", type=int, help="Stop after this many rounds.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the campaign's page here (default: <reports-dir>/<run-id>/"
                   "bisect.html).")
def bisect(campaign: Path, as_json: bool, resume: str | None, run_id: str | None,
           time_scale: float, db: str | None, reports_dir: Path,
           max_rounds: int | None, html_path: Path | None) -> int:
    """Boot the builds of CAMPAIGN, chosen one round at a time by expected information,
    until one build is the culprit with the target confidence (or the budget is spent)."""
    c = load_campaign(campaign)
    err = Console(stderr=True)

    def on_round(r: RoundDone) -> None:
        booted = ", ".join(f"{b}x{m}" for b, m in r.names)
        err.print(f"round {r.number}: {booted} -> {r.best} {r.probability:.3f} "
                  f"({r.boots} boots)", highlight=False)

    def on_build(b: Build, done: BuildOutcome | None) -> None:
        what = f"{b.name} ({b.rev[:12]}{f' + {b.count} patches' if b.patches else ''})"
        if done is None:
            err.print(f"building {what} in {b.dir}", highlight=False)
        elif done.interrupted:
            err.print(f"build of {what} stopped", highlight=False)
        elif not done.ok:
            err.print(f"build of {what} failed, set aside: {done.error}", highlight=False)
        elif not done.cached:
            err.print(f"built {what} in {done.seconds:.1f} s", highlight=False)

    runner = BisectRunner(c, BisectOptions(resume=resume, run_id=run_id,
                                           time_scale=time_scale,
                                           db=parse_target(db) if db else None,
                                           reports_dir=reports_dir, max_rounds=max_rounds),
                          on_round=on_round, on_build=on_build)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        err.print("stopping after the boots under way (Ctrl-C again to abandon them)")
        runner.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    old = signal.signal(signal.SIGINT, on_signal)
    try:
        res = runner.run()
    finally:
        signal.signal(signal.SIGINT, old)
    s = summarize(res.posterior, c.confidence)
    page = write_bisect_html(res, s, c, html_path or (res.run_dir or reports_dir / res.run_id)
                             / "bisect.html")
    if as_json:
        click.echo(json.dumps({**result_json(res, s, c), "html": str(page)}, indent=2))
    else:
        out = Console(width=None if sys.stdout.isatty() else 120)
        print_result(out, res, s)
        out.print(f"page: {page}", highlight=False, soft_wrap=True)
    return {"found": 0, "interrupted": 130}.get(res.status, 3)
