"""The simulated lab's model: rules, reproducibility by seed, located errors, faults."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.inventory import Lab, load_lab
from harness.model import Outcome
from harness.sim.model import fate, load_sim_model, rule_for, true_rates, uri_seed

ROOT = Path(__file__).resolve().parents[2]
SIM_LAB = ROOT / "matrices" / "labs" / "eas-66611-sim-lab.yaml"

LAB = """\
name: t
hosts:
  a: {uri: "sim:///", slots: 2, attributes: {numa_patch: false}}
  b: {uri: "sim:///?seed=99", attributes: {numa_patch: true}}
guests:
  g1: {kernel_release: 4.18.0-147.el8.aarch64}
  g2: {kernel_release: 5.10.0-1.aarch64}
sim:
  seed: 7
  rules:
    - match: {numa_patch: false, guest: g1}
      vcpu_offline: 1.0
      boot_failure: 0.3
    - match: {guest: [g1, g2], vcpus: 8}
      vcpu_offline: 0.2
  boot_seconds: {mean: 40, sd: 8}
  infra_error: 0.0
"""


def lab_from(tmp_path: Path, text: str = LAB) -> Lab:
    f = tmp_path / "lab.yaml"
    f.write_text(text)
    return load_lab(f)


def test_first_matching_rule_wins(tmp_path: Path) -> None:
    model = load_sim_model(lab_from(tmp_path))
    r = rule_for(model, "a", {"numa_patch": False}, "g1", 8)
    assert r is not None and r.vcpu_offline == 1.0
    r = rule_for(model, "b", {"numa_patch": True}, "g1", 8)
    assert r is not None and r.vcpu_offline == 0.2
    assert rule_for(model, "b", {"numa_patch": True}, "g1", 4) is None
    # a bool attribute never matches the number 0/1 and vice versa
    assert rule_for(model, "a", {"numa_patch": 0}, "g1", 4) is None


def test_same_seed_same_outcomes_and_rates_match(tmp_path: Path) -> None:
    model = load_sim_model(lab_from(tmp_path))
    kw = dict(seed=7, host="a", attrs={"numa_patch": False}, guest="g1", vcpus=8)
    first = [fate(model, index=i, **kw) for i in range(4000)]  # type: ignore[arg-type]
    again = [fate(model, index=i, **kw) for i in reversed(range(4000))][::-1]  # type: ignore[arg-type]
    assert first == again
    other = [fate(model, index=i, **{**kw, "seed": 8}) for i in range(4000)]  # type: ignore[arg-type]
    assert [f.outcome for f in other] != [f.outcome for f in first]
    c = Counter(f.outcome for f in first)
    truth = true_rates(model, "a", {"numa_patch": False}, "g1", 8)
    assert truth == {"ok": 0.0, "vcpu_offline": pytest.approx(0.7), "boot_failure": 0.3}
    assert c[Outcome.OK] == 0
    assert abs(c[Outcome.BOOT_FAILURE] / 4000 - 0.3) < 0.03
    assert abs(c[Outcome.VCPU_OFFLINE] / 4000 - 0.7) < 0.03
    for f in first:
        if f.outcome is Outcome.VCPU_OFFLINE:
            assert f.offline_cpus and all(1 <= cpu < 8 for cpu in f.offline_cpus)
        if f.outcome is Outcome.BOOT_FAILURE:
            assert f.failure in ("panic", "silent")
    assert {f.failure for f in first} >= {"panic", "silent", ""}


def test_unmatched_boots_are_clean_and_durations_sampled(tmp_path: Path) -> None:
    model = load_sim_model(lab_from(tmp_path))
    fates = [fate(model, seed=7, host="b", attrs={"numa_patch": True}, guest="g2", vcpus=4,
                  index=i) for i in range(500)]
    assert {f.outcome for f in fates} == {Outcome.OK}
    secs = [f.boot_seconds for f in fates]
    assert 38 < sum(secs) / len(secs) < 42 and min(secs) >= 1.0 and max(secs) > 50


def test_infra_faults_draw_per_attempt(tmp_path: Path) -> None:
    lab = lab_from(tmp_path, LAB.replace("infra_error: 0.0", "infra_error: 0.5"))
    model = load_sim_model(lab)
    kw = dict(seed=7, host="b", attrs={"numa_patch": True}, guest="g2", vcpus=4)
    infra = [i for i in range(200) if fate(model, index=i, **kw).outcome  # type: ignore[arg-type]
             is Outcome.INFRA_ERROR]
    assert 60 < len(infra) < 140
    # a retry (attempt 2) draws again: many of them succeed
    retried = [fate(model, index=i, attempt=2, **kw).outcome for i in infra]  # type: ignore[arg-type]
    assert Outcome.OK in retried


def test_uri_seed() -> None:
    assert uri_seed("sim:///?seed=12") == 12
    assert uri_seed("sim:///") is None
    with pytest.raises(ConfigError, match="whole number"):
        uri_seed("sim:///?seed=x")


@pytest.mark.parametrize(("old", "new", "where", "what"), [
    ("{numa_patch: false, guest: g1}", "{numa_pach: false, guest: g1}", (11, 15),
     "unknown match key 'numa_pach' (did you mean 'numa_patch'?)"),
    ("guest: [g1, g2], vcpus: 8", "guest: [g1, g3], vcpus: 8", (14, 27), "unknown guest 'g3'"),
    ("vcpus: 8}", "vcpus: eight}", (14, 39), "vcpus: 'eight' is not a whole number"),
    ("boot_failure: 0.3", "boot_failure: 1.3", (13, 21), "less than or equal to 1"),
    ("infra_error: 0.0", "infra_eror: 0.0", (17, 3), "unknown key 'infra_eror'"),
])
def test_model_errors_are_located(tmp_path: Path, old: str, new: str,
                                  where: tuple[int, int], what: str) -> None:
    assert old in LAB
    # load_lab checks the sim section (so that `harness plan` refuses what `run` would)
    with pytest.raises(ConfigError) as exc:
        lab_from(tmp_path, LAB.replace(old, new))
    assert exc.value.where is not None
    assert (exc.value.where.line, exc.value.where.column) == where
    assert what in str(exc.value)


def test_eas_66611_sim_lab_encodes_the_seed_findings() -> None:
    lab = load_lab(SIM_LAB)
    model = load_sim_model(lab)
    n1, n3 = lab.host("node-1").attributes, lab.host("node-3").attributes

    def rates(host: str, attrs: dict[str, object], guest: str, vcpus: int) -> dict[str, float]:
        return true_rates(model, host, attrs, guest, vcpus)  # type: ignore[arg-type]

    for v in (4, 8, 16, 32):
        for g in ("es10", "centos-8.1", "kylin"):
            assert rates("node-1", n1, g, v)["ok"] == 1.0 == rates("node-3", n3, g, v)["ok"]
        for g in ("es11", "es14", "es15"):
            r1, r3 = rates("node-1", n1, g, v), rates("node-3", n3, g, v)
            assert r1["ok"] == 0.0 and r1["boot_failure"] >= 0.2  # always offline, fails often
            assert 0 < r3["boot_failure"] <= 0.05 and 0 < r3["vcpu_offline"] < 0.5
        assert rates("node-1", n1, "es11", v)["boot_failure"] > rates("node-1", n1, "es14",
                                                                         v)["boot_failure"]
        assert rates("node-3", n3, "es11", v)["vcpu_offline"] > rates("node-3", n3, "es15",
                                                                         v)["vcpu_offline"]
