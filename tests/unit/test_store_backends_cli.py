"""Every reader works on both databases, and one database holds several labs: ``harness
run`` records into the database its target names (``--db``, ``$VMBH_DB``, the lab's
``results:``), and ``runs``, ``report``, ``compare`` read it back, filtered by lab."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harness.cli import cli
from harness.errors import ConfigError
from harness.inventory import load_lab
from harness.store import Store, is_url, parse_target, resolve_db

REPO = Path(__file__).resolve().parents[2]


def two_labs(tmp: Path, results: str | None = None) -> tuple[Path, Path]:
    """The simulated eas-66611 matrix on its lab and on a copy named ``lab-b`` (the same
    matrix name: only the lab tells their runs apart)."""
    shutil.copytree(REPO / "matrices", tmp / "matrices")
    lab_b = yaml.safe_load((tmp / "matrices/labs/eas-66611-sim-lab.yaml").read_text())
    lab_b["name"] = "lab-b"
    if results is not None:
        lab_b["results"] = results
    (tmp / "matrices/labs/lab-b.yaml").write_text(yaml.safe_dump(lab_b))
    m = yaml.safe_load((tmp / "matrices/eas-66611-sim.yaml").read_text())
    m["lab"] = "labs/lab-b.yaml"
    (tmp / "matrices/eas-b.yaml").write_text(yaml.safe_dump(m))
    return tmp / "matrices/eas-66611-sim.yaml", tmp / "matrices/eas-b.yaml"


def invoke(*args: str, env: dict[str, str] | None = None) -> str:
    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert res.exit_code in (0, 1), res.output  # 1: a cell failed its expectation (sim)
    return res.output


def test_runs_report_and_compare_on_one_database_of_two_labs(
        db_target: Path | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VMBH_DB", raising=False)
    a, b = two_labs(tmp_path)
    db = str(db_target)
    common = ("--boots", "3", "-q", "--no-report")
    invoke("run", str(a), "--db", db, "--run-id", "a1", *common)
    invoke("run", str(b), "--db", db, "--run-id", "b1", *common)
    # the environment variable names the database when --db is not given
    invoke("run", str(a), "--run-id", "a2", *common, env={"VMBH_DB": db})
    with Store(parse_target(db), create=False) as store:
        assert [(r.id, r.lab) for r in store.list_runs()] == \
            [("a1", "eas-66611-sim"), ("b1", "lab-b"), ("a2", "eas-66611-sim")]
        assert sum(c.n for c in store.counts("a2").values()) == 48 * 3
        # the trend of a2 is a1: b1 ran the same matrix later, but on another lab
        assert store.previous_run("eas-66611-sim", before="a2").id == "a1"  # type: ignore[union-attr]
    runs = json.loads(invoke("runs", "--db", db, "--lab", "eas-66611-sim", "--json"))["runs"]
    assert [(r["id"], r["lab"], r["guest_boots"]) for r in runs] == \
        [("a1", "eas-66611-sim", 144), ("a2", "eas-66611-sim", 144)]
    runs = json.loads(invoke("runs", "eas-66611-sim", "--db", db, "--lab", "lab-b", "--json"))
    assert [r["id"] for r in runs["runs"]] == ["b1"]
    assert "b1" in invoke("runs", "--db", db)
    out = tmp_path / "out"
    invoke("report", "a2", "--db", db, "--format", "json,md,html,junit", "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["id"] == "a2" and report["previous"]["previous_run"] == "a1"
    assert len(report["cells"]) == 48
    diff = json.loads(invoke("compare", "a1", "a2", "--db", db, "--json"))
    assert diff["previous_run"] == "a1" and diff["run"] == "a2"


def test_the_database_target_comes_from_cli_env_lab_or_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VMBH_DB", raising=False)
    url = "postgresql://harness:secret@db.example:5433/results"
    assert resolve_db(None, "lab-a", None, tmp_path) == tmp_path / "lab-a.db"
    assert resolve_db(None, "lab-a", url) == url
    assert resolve_db(None, "lab-a", tmp_path / "x.db") == tmp_path / "x.db"
    monkeypatch.setenv("VMBH_DB", str(tmp_path / "env.db"))
    assert resolve_db(None, "lab-a", url) == tmp_path / "env.db"
    assert resolve_db(url, "lab-a", None) == url
    assert is_url(url) and not is_url(str(tmp_path / "x.db"))
    with pytest.raises(ConfigError, match="unknown scheme 'mysql'"):
        parse_target("mysql://h/db")
    # the lab file takes a URL as it is, a path relative to itself
    two_labs(tmp_path, results=url)
    assert load_lab(tmp_path / "matrices/labs/lab-b.yaml").spec.results == url


def test_the_password_never_reaches_messages(pg_url: str) -> None:
    from harness.store import describe

    bad = pg_url.replace("harness@", "harness:hunter2@").replace("/harness_test", "/nope")
    assert "hunter2" not in describe(bad) and "***" in describe(bad)
    with pytest.raises(ConfigError) as e:
        Store(bad)
    assert "cannot connect" in str(e.value) and "hunter2" not in str(e.value)


def test_postgresql_user_mistakes_are_config_errors(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="holds no results yet"):
        Store(pg_url, create=False)
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE photos (id integer)")
    with pytest.raises(ConfigError, match=r"not a results database \(tables: photos\)"):
        Store(pg_url)
