"""Campaign files and the campaign loop on the simulated lab (real boot loop, scheduler,
classifier and SQLite store; only libvirt and SSH are simulated)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.bisect.campaign import load_campaign
from harness.bisect.loop import BisectOptions, BisectResult, BisectRunner, recorded_counts
from harness.cli import cli
from harness.errors import ConfigError
from harness.store import Store

N = 16
CULPRIT = 11


def write_lab(tmp: Path, *, bad: float = 0.6, extra_sim: str = "", host_extra: str = "",
              slots: int = 2) -> Path:
    guests = "\n".join(f"  b{i:02d}: {{kernel_release: 5.10.0-{i}.aarch64}}" for i in range(N))
    bad_builds = ", ".join(f"b{i:02d}" for i in range(CULPRIT, N))
    lab = tmp / "lab.yaml"
    lab.write_text(f"""name: bisect-test
hosts:
  sim-1:
    uri: sim:///
    slots: {slots}
    attributes: {{numa_patch: true}}{host_extra}
  other:
    uri: sim:///
    attributes: {{numa_patch: false}}
guests:
{guests}
sim:
  seed: 5
  rules:
    - match: {{guest: [{bad_builds}]}}
      vcpu_offline: {bad}
{extra_sim}""")
    return lab


def write_campaign(tmp: Path, body: str = "", name: str = "campaign.yaml") -> Path:
    builds = ", ".join(f"b{i:02d}" for i in range(N))
    path = tmp / name
    path.write_text(f"""lab: lab.yaml
builds: [{builds}]
cell: {{host: {{numa_patch: true}}, vcpus: 4}}
{body}""")
    return path


def run(campaign: Path, db: Path, *, resume: str | None = None,
        max_rounds: int | None = None) -> BisectResult:
    return BisectRunner(load_campaign(campaign),
                        BisectOptions(db=db, reports_dir=db.parent / "reports", resume=resume,
                                      max_rounds=max_rounds)).run()


def test_campaign_file_defaults(tmp_path: Path) -> None:
    write_lab(tmp_path)
    c = load_campaign(write_campaign(tmp_path))
    assert c.name == "campaign" and c.matrix_name == "bisect-campaign"
    assert c.hosts == ("sim-1",) and c.slots == 2
    assert c.confidence == 0.95 and c.model == "auto"
    assert c.failure.describe() == "vcpu_offline"


@pytest.mark.parametrize(("body", "line", "message"), [
    ("failure: vcpu_ofline\n", 4, "failure"),
    ("confidence: 1.5\n", 4, "confidence"),
    ("budget: {boot: 5}\n", 4, "unknown key 'boot' (did you mean 'boots'?)"),
    ("model: clever\n", 4, "model"),
])
def test_mistakes_in_the_file_are_located(tmp_path: Path, body: str, line: int,
                                          message: str) -> None:
    write_lab(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_campaign(write_campaign(tmp_path, body))
    assert message in str(exc.value)
    assert exc.value.where is not None and exc.value.where.line == line


def test_unknown_build_host_and_attribute(tmp_path: Path) -> None:
    write_lab(tmp_path)
    bad_build = tmp_path / "b.yaml"
    bad_build.write_text("lab: lab.yaml\nbuilds: [b00, b01,\n  b03x]\ncell: {host: sim-1, "
                         "vcpus: 2}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml:3:3: build 'b03x' is not a guest of lab "
                                          r"'bisect-test' \(did you mean 'b03'\?\)"):
        load_campaign(bad_build)
    dup = tmp_path / "d.yaml"
    dup.write_text("lab: lab.yaml\nbuilds: [b00, b01, b00]\ncell: {host: sim-1, vcpus: 2}\n")
    with pytest.raises(ConfigError, match="listed twice"):
        load_campaign(dup)
    host = tmp_path / "h.yaml"
    host.write_text("lab: lab.yaml\nbuilds: [b00, b01]\ncell: {host: sim1, vcpus: 2}\n")
    with pytest.raises(ConfigError, match=r"h\.yaml:3:.*unknown host 'sim1' \(did you mean"):
        load_campaign(host)
    attr = tmp_path / "a.yaml"
    attr.write_text("lab: lab.yaml\nbuilds: [b00, b01]\ncell: {host: {numa: true}, "
                    "vcpus: 2}\n")
    with pytest.raises(ConfigError, match="unknown host attribute 'numa'"):
        load_campaign(attr)
    missing = tmp_path / "m.yaml"
    missing.write_text("lab: nowhere.yaml\nbuilds: [b00, b01]\ncell: {host: sim-1, vcpus: 2}\n")
    with pytest.raises(ConfigError, match=r"m\.yaml:1:6: lab file not found"):
        load_campaign(missing)


def test_campaign_finds_the_culprit_on_the_sim_lab(tmp_path: Path) -> None:
    write_lab(tmp_path)
    res = run(write_campaign(tmp_path), tmp_path / "r.db")
    assert res.status == "found"
    assert res.culprit == f"b{CULPRIT:02d}"
    post = res.posterior
    assert post.probability >= 0.95
    with Store(tmp_path / "r.db") as store:  # the posterior is made of what was recorded
        k, f, own, infra = recorded_counts(store, load_campaign(tmp_path / "campaign.yaml"),
                                           res.run_id)
        assert (tuple(k), tuple(f)) == (post.boots, post.failures)
        assert own == res.campaign_boots == post.total_boots
        assert infra == res.infra_skips
        assert store.get_run(res.run_id).status == "found"


@pytest.mark.parametrize(("name", "prefix"), [
    ("bisect-sim", "bisect-sim-"), ("bisect", "bisect-"), ("sim", "bisect-sim-"),
    ("bisector", "bisect-bisector-"),
])
def test_run_ids_do_not_double_the_prefix(tmp_path: Path, name: str, prefix: str) -> None:
    write_lab(tmp_path)
    camp = write_campaign(tmp_path, f"name: {name}\nbudget: {{boots: 2}}\n")
    res = run(camp, tmp_path / "r.db")
    assert res.run_id.startswith(prefix) and not res.run_id.startswith(prefix + "bisect-")
    assert res.run_id[len(prefix):][:8].isdigit()  # then the date
    more = run(camp, tmp_path / "r.db", resume=res.run_id)  # resumes as before
    assert more.run_id == res.run_id
    with Store(tmp_path / "r.db") as store:
        assert store.get_run(res.run_id).matrix == f"bisect-{name}"


def test_a_killed_campaign_resumes_to_the_same_state(tmp_path: Path) -> None:
    write_lab(tmp_path)
    camp = write_campaign(tmp_path)
    whole = run(camp, tmp_path / "whole.db")
    part = run(camp, tmp_path / "part.db", max_rounds=3)
    assert part.status == "stopped"
    assert part.posterior.total_boots < whole.posterior.total_boots
    rest = run(camp, tmp_path / "part.db", resume=part.run_id)
    assert rest.run_id == part.run_id
    assert rest.posterior == whole.posterior
    assert rest.campaign_boots == whole.campaign_boots


def test_recorded_boots_seed_a_new_campaign(tmp_path: Path) -> None:
    write_lab(tmp_path)
    camp = write_campaign(tmp_path)
    first = run(camp, tmp_path / "r.db")
    again = run(camp, tmp_path / "r.db")  # a new run: decided by what is recorded
    assert again.status == "found" and again.campaign_boots == 0
    assert again.posterior == first.posterior
    alone = run(write_campaign(tmp_path, "use_recorded: false\n", "alone.yaml"),
                tmp_path / "r.db")
    assert alone.campaign_boots > 0


def test_infrastructure_errors_are_skips_not_data(tmp_path: Path) -> None:
    # 0.1: infra errors on ~10% of boots; five in a row (which set the host aside) 1e-5
    write_lab(tmp_path, extra_sim="  infra_error: 0.1\n")
    res = run(write_campaign(tmp_path), tmp_path / "r.db")
    assert res.infra_skips > 0
    # the campaign still decides on guest boots alone; which build it names is a claim
    # at >= 0.95 (right 96% of the time in benchmarks/bench_bisect.py), and with slots
    # running in threads the order of infra errors is not fixed, so the exact build is
    # asserted by the infra-free tests, not here
    assert res.status == "found" and res.posterior.probability >= 0.95
    with Store(tmp_path / "r.db") as store:
        counts = store.counts(res.run_id)
    assert sum(c.n for c in counts.values()) == res.posterior.total_boots
    assert sum(c.infra_error for c in counts.values()) == res.infra_skips


def test_a_host_that_goes_away_stops_the_campaign_resumably(tmp_path: Path) -> None:
    write_lab(tmp_path, extra_sim="  hosts:\n    sim-1: {gone_after: 6}\n")
    res = run(write_campaign(tmp_path), tmp_path / "r.db")
    assert res.status == "no_host"
    assert "sim-1" in res.set_aside
    assert 0 < res.posterior.total_boots <= 6


def test_budget_stops_the_campaign(tmp_path: Path) -> None:
    write_lab(tmp_path, bad=0.1)
    res = run(write_campaign(tmp_path, "budget: {boots: 7}\n"), tmp_path / "r.db")
    assert res.status == "budget"
    assert res.campaign_boots == 7


def test_cli_json(tmp_path: Path) -> None:
    write_lab(tmp_path)
    camp = write_campaign(tmp_path)
    out = CliRunner().invoke(cli, ["bisect", str(camp), "--json", "--db",
                                   str(tmp_path / "r.db"), "--reports-dir",
                                   str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["culprit"] == f"b{CULPRIT:02d}" and data["culprit_index"] == CULPRIT
    assert data["probability"] >= 0.95
    assert data["boots"] == sum(b["boots"] for b in data["builds"])
    assert [b["name"] for b in data["builds"]] == [f"b{i:02d}" for i in range(N)]
    assert set(data["builds"][0]) == {"name", "boots", "failures", "posterior"}
    assert sum(b["posterior"] for b in data["builds"]) == pytest.approx(1.0)


def test_failure_by_signature_title(tmp_path: Path) -> None:
    write_lab(tmp_path)
    camp = write_campaign(tmp_path, 'failure: {signature: "failed to come online"}\n')
    c = load_campaign(camp)
    assert c.failure.describe() == "signature containing 'failed to come online'"
    res = run(camp, tmp_path / "r.db")
    assert res.status == "found" and res.culprit == f"b{CULPRIT:02d}"
    never = write_campaign(tmp_path, 'failure: {signature: "no such title"}\n'
                           "budget: {boots: 12}\n", "never.yaml")
    res = run(never, tmp_path / "n.db")
    assert res.status == "budget" and sum(res.posterior.failures) == 0


def test_earlier_nights_of_the_known_good_build_set_the_priors(tmp_path: Path) -> None:
    """Three earlier runs booted b00 in the campaign's cell, one boot failing: the
    empirical-Bayes prior says good builds fail (P(B) 0.99) and the result says so; a
    campaign that gives ``priors:`` keeps its own."""
    from harness.bisect.loop import cell_of, known_good_history
    from harness.model import BootResult, Outcome

    write_lab(tmp_path)
    camp = write_campaign(tmp_path)
    c = load_campaign(camp)
    db = tmp_path / "r.db"
    with Store(db) as store:
        for night in range(3):
            cell = cell_of(c, "sim-1", "b00")
            store.create_run(f"night{night}", c.matrix_name, [cell])
            store.record_many(BootResult(f"night{night}", cell.id, i,
                                         Outcome.VCPU_OFFLINE if (night, i) == (1, 3)
                                         else Outcome.OK, offline_cpus=(1,) if
                                         (night, i) == (1, 3) else ())
                              for i in range(30))
        assert sorted(known_good_history(store, c, "none")) == [(30, 0), (30, 0), (30, 1)]
    res = run(camp, db)
    assert "empirical Bayes from 3 earlier runs" in res.prior and "1/90 failed" in res.prior
    assert res.posterior.baseline_weight == pytest.approx(1.0)  # b00 failed: model B only
    given = run(write_campaign(tmp_path, "priors: {baseline: 0.5}\n", "given.yaml"), db)
    assert given.prior == "priors as the campaign file gives them"
