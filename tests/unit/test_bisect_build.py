"""Campaigns that make their own builds (the ``build:`` section): real git repositories made
here, a small build command (a shell script that writes a file), the simulated lab for the
boots. Checked: the list of builds, that only the builds the campaign boots are made, that
a second campaign reuses them, that a failing build is set aside (never a guest failure),
and that every mistake in the section is located."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness.bisect.build import Build
from harness.bisect.builder import Builder, BuildOutcome
from harness.bisect.campaign import load_campaign
from harness.bisect.loop import BisectOptions, BisectResult, BisectRunner
from harness.errors import ConfigError
from harness.store import Store

N = 16  # builds: the known good and 15 commits
CULPRIT = 11

SCRIPT = """\
#!/bin/sh
# build.sh SRC OUT REV: the "kernel" is the source's version file
echo "$3" >> "{calls}"
case "$(cat "$1/version")" in
  {fail}) echo "compiling $3" >&2; echo "error: $(cat "$1/version") does not compile" >&2
         exit 3;;
esac
cat "$1/version" > "$2/Image"
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def make_repo(tmp: Path, commits: int = N - 1) -> tuple[Path, list[str]]:
    """A repository whose commit k (k = 0 the root) sets ``version`` to ``v<k>``; returns
    the shas, oldest first."""
    repo = tmp / "linux"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for k in range(commits + 1):
        (repo / "version").write_text(f"v{k}\n")
        git(repo, "add", "version")
        git(repo, "commit", "-q", "-m", f"commit {k}")
    shas = git(repo, "rev-list", "--reverse", "HEAD").split()
    return repo, shas


def write_lab(tmp: Path, n: int = N, culprit: int = CULPRIT, extra_host: str = "") -> Path:
    guests = "\n".join(f"  b{i:02d}: {{kernel_release: 5.10.0-{i}.aarch64}}" for i in range(n))
    bad = ", ".join(f"b{i:02d}" for i in range(culprit, n))
    lab = tmp / "lab.yaml"
    lab.write_text(f"""name: build-test
hosts:
  sim-1:
    uri: sim:///
    slots: 2
    attributes: {{numa_patch: true}}
{extra_host}guests:
{guests}
sim:
  seed: 7
  rules:
    - match: {{guest: [{bad}]}}
      vcpu_offline: 0.6
""")
    return lab


def write_script(tmp: Path, fail: str = "never") -> Path:
    script = tmp / "build.sh"
    script.write_text(SCRIPT.format(calls=tmp / "calls.log", fail=fail))
    script.chmod(0o755)
    return script


def write_campaign(tmp: Path, build: str, name: str = "campaign.yaml",
                   head: str = "") -> Path:
    path = tmp / name
    path.write_text(f"""{head}lab: lab.yaml
cell: {{host: sim-1, vcpus: 4}}
build:
{build}""")
    return path


GIT_BUILD = """\
  command: [./build.sh, "{src}", "{out}", "{rev}"]
  git: {repo: linux, range: "%s..main"}
  guest: {name: "b{index:02d}", kernel: "{out}/Image"}
  cache: cache
"""


def alive(pid: int) -> bool:
    """Running (a zombie left to a container's init that does not reap is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def calls(tmp: Path) -> list[str]:
    log = tmp / "calls.log"
    return log.read_text().split() if log.exists() else []


def run(campaign: Path, db: Path) -> tuple[BisectResult, list[str]]:
    started: list[str] = []

    def on_build(b: Build, done: BuildOutcome | None) -> None:
        if done is None:
            started.append(b.name)

    res = BisectRunner(load_campaign(campaign),
                       BisectOptions(db=db, reports_dir=db.parent / "reports"),
                       on_build=on_build).run()
    return res, started


@pytest.fixture
def repo(tmp_path: Path) -> list[str]:
    _, shas = make_repo(tmp_path)
    write_lab(tmp_path)
    write_script(tmp_path)
    return shas


def test_a_git_range_is_the_parent_of_its_first_commit_then_its_commits(
        tmp_path: Path, repo: list[str]) -> None:
    c = load_campaign(write_campaign(tmp_path, GIT_BUILD % repo[2]))
    assert c.build is not None
    assert [b.rev for b in c.build.builds] == repo[2:]  # commit 2 is the known good
    assert c.builds == tuple(f"b{i:02d}" for i in range(N - 2))
    assert [b.index for b in c.build.builds] == list(range(N - 2))
    b3 = c.build.builds[3]
    assert b3.dir == tmp_path / "cache" / f"git-{repo[5][:12]}" and b3.key == repo[5][:12]
    guest = c.lab.guest("b03")  # the lab guest b03, booting the build's kernel
    assert guest.boot is not None and guest.boot.kernel == b3.out / "Image"
    assert guest.kernel_release == "5.10.0-3.aarch64"
    assert b3.products == (b3.out / "Image",)
    assert c.build.argv(b3) == ["./build.sh", str(b3.src), str(b3.out), repo[5]]
    # the default names are the commits' short shas, each booted like one lab guest
    plain = load_campaign(write_campaign(tmp_path, GIT_BUILD.replace(
        'name: "b{index:02d}"', "like: b00") % repo[0], "plain.yaml"))
    assert plain.builds == tuple(s[:12] for s in repo)
    assert plain.lab.guest(repo[4][:12]).kernel_release == "5.10.0-0.aarch64"


def test_merges_count_once_on_the_first_parent_chain(tmp_path: Path, repo: list[str]) -> None:
    r = tmp_path / "linux"
    git(r, "checkout", "-q", "-b", "topic", repo[3])
    for k in range(2):
        (r / f"topic{k}").write_text("x\n")
        git(r, "add", f"topic{k}")
        git(r, "commit", "-q", "-m", f"topic {k}")
    git(r, "checkout", "-q", "main")
    git(r, "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
    c = load_campaign(write_campaign(tmp_path, GIT_BUILD.replace(
        'name: "b{index:02d}"', 'name: "c{index:02d}", like: b00') % repo[-2]))
    assert c.build is not None
    merge = git(r, "rev-parse", "HEAD").strip()
    assert [b.rev for b in c.build.builds] == [repo[-2], repo[-1], merge]


def test_only_the_builds_booted_are_made_and_a_second_campaign_makes_none(
        tmp_path: Path, repo: list[str]) -> None:
    camp = write_campaign(tmp_path, GIT_BUILD % repo[0])
    res, started = run(camp, tmp_path / "r.db")
    assert res.status == "found" and res.culprit == f"b{CULPRIT:02d}"
    booted = {res.builds[i] for i in range(N) if res.posterior.boots[i]}
    assert set(started) == booted and len(started) == len(booted)  # each made once
    assert len(booted) < N  # lazily: not every build
    made = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert made == sorted(f"git-{repo[int(b[1:])][:12]}" for b in booted)
    assert sorted(calls(tmp_path)) == sorted(repo[int(b[1:])] for b in booted)
    for b in booted:  # each build's output is its commit's tree
        k = int(b[1:])
        assert (tmp_path / "cache" / f"git-{repo[k][:12]}" / "out" / "Image").read_text() \
            == f"v{k}\n"
        assert not (tmp_path / "cache" / f"git-{repo[k][:12]}" / "src").exists()
    # a second campaign of its own (nothing recorded reused) boots the same builds again,
    # and makes none of them
    alone = write_campaign(tmp_path, GIT_BUILD % repo[0], "alone.yaml",
                           head="use_recorded: false\n")
    again, started = run(alone, tmp_path / "r.db")
    assert again.campaign_boots > 0 and again.culprit == f"b{CULPRIT:02d}"
    assert {again.builds[i] for i in range(N) if again.posterior.boots[i]} <= booted
    assert started == []
    assert len(calls(tmp_path)) == len(booted)
    # a removed output is made again
    victim = next(iter(sorted(booted)))
    (tmp_path / "cache" / f"git-{repo[int(victim[1:])][:12]}" / "out" / "Image").unlink()
    c = load_campaign(camp)
    assert c.build is not None
    b = c.build.builds[int(victim[1:])]
    assert Builder(c.build).recorded(b) is None
    done = Builder(c.build).ensure(b)
    assert done.ok and not done.cached and (b.out / "Image").exists()


def test_a_build_that_fails_is_set_aside_not_a_guest_failure(tmp_path: Path) -> None:
    _, shas = make_repo(tmp_path)
    write_lab(tmp_path)
    write_script(tmp_path, fail="v[2-9]")  # builds 2..9 do not compile
    camp = write_campaign(tmp_path, GIT_BUILD % shas[0])
    res, started = run(camp, tmp_path / "r.db")
    assert res.status == "found" and res.culprit == f"b{CULPRIT:02d}"
    failed = {b for b in res.set_aside if b in {f"b{i:02d}" for i in range(2, 10)}}
    assert failed and set(started) >= failed
    for b in failed:
        why = res.set_aside[b]
        assert why.startswith("build failed: build command exited with status 3: ")
        assert f"compiling {shas[int(b[1:])]} | error: v{int(b[1:])} does not compile" in why
        assert res.posterior.boots[int(b[1:])] == 0
    with Store(tmp_path / "r.db") as store:  # no boot of a failed build: not even a skip
        counts = store.counts(res.run_id)
    assert all(cell.split("/")[1] not in failed for cell, n in counts.items() if n.n
               or n.infra_error)
    assert sum(c.infra_error for c in counts.values()) == res.infra_skips
    # the failure is recorded: a resumed or new campaign sets it aside without building
    made = len(calls(tmp_path))
    again, started = run(write_campaign(tmp_path, GIT_BUILD % shas[0], "again.yaml",
                                        head="use_recorded: false\n"), tmp_path / "r.db")
    assert started == [] or not set(started) & failed
    assert len(calls(tmp_path)) == made + len(started)
    for b in set(again.set_aside) & failed:
        assert "remove it to build again" in again.set_aside[b]
    record = json.loads((tmp_path / "cache" / f"git-{shas[int(min(failed)[1:])][:12]}"
                         / "result.json").read_text())
    assert record["ok"] is False and "does not compile" in record["error"]


PATCH = """\
--- a/version
+++ b/version
@@ -1 +1 @@
-{old}
+{new}
"""


def make_series(tmp: Path, n: int = 8) -> None:
    """Patch k turns ``version`` from ``p<k-1>`` into ``p<k>`` (the base has ``p0``)."""
    repo = tmp / "linux"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "version").write_text("p0\n")
    git(repo, "add", "version")
    git(repo, "commit", "-q", "-m", "base")
    pdir = tmp / "patches"
    pdir.mkdir()
    lines = ["# the series, in order"]
    for k in range(1, n + 1):
        (pdir / f"{k:04d}-step.patch").write_text(PATCH.format(old=f"p{k - 1}", new=f"p{k}"))
        lines.append(f"{k:04d}-step.patch -p1" if k % 2 else f"{k:04d}-step.patch")
    (pdir / "series").write_text("\n".join(lines) + "\n\n")


SERIES_BUILD = """\
  command: "./build.sh {src} {out} {rev}"
  patches: {base: linux, series: patches/series}
  guest: {name: "b{count:02d}", kernel: "{out}/Image"}
  cache: cache dir
"""


def test_a_patch_series_applied_cumulatively(tmp_path: Path) -> None:
    make_series(tmp_path, 8)
    write_lab(tmp_path, n=9, culprit=5)
    write_script(tmp_path)
    c = load_campaign(write_campaign(tmp_path, SERIES_BUILD))
    assert c.build is not None
    assert c.builds == tuple(f"b{k:02d}" for k in range(9))
    base = git(tmp_path / "linux", "rev-parse", "HEAD").strip()
    assert {b.rev for b in c.build.builds} == {base}
    assert [len(b.patches) for b in c.build.builds] == list(range(9))
    assert len({b.key for b in c.build.builds}) == 9
    # the shell line gets its placeholders quoted (the cache path has a space)
    argv = c.build.argv(c.build.builds[3])
    assert argv[:2] == ["/bin/sh", "-c"] and f"'{c.build.builds[3].out}'" in argv[2]
    res, started = run(write_campaign(tmp_path, SERIES_BUILD), tmp_path / "r.db")
    assert res.status == "found" and res.culprit == "b05"
    for name in started:
        b = c.build.builds[int(name[1:])]
        assert (b.out / "Image").read_text() == f"p{b.count}\n"  # the first k patches
    # a changed patch is another build: its key (and the keys after it) change
    (tmp_path / "patches" / "0006-step.patch").write_text(
        PATCH.format(old="p5", new="p6") + " \n")
    c2 = load_campaign(write_campaign(tmp_path, SERIES_BUILD))
    assert c2.build is not None
    assert [a.key == b.key for a, b in zip(c.build.builds, c2.build.builds, strict=True)] \
        == [True] * 6 + [False] * 3


def test_a_patch_that_does_not_apply_fails_its_build(tmp_path: Path) -> None:
    make_series(tmp_path, 3)
    (tmp_path / "patches" / "0002-step.patch").write_text(PATCH.format(old="zz", new="p2"))
    write_lab(tmp_path, n=4, culprit=2)
    write_script(tmp_path)
    c = load_campaign(write_campaign(tmp_path, SERIES_BUILD))
    assert c.build is not None
    builder = Builder(c.build)
    assert builder.ensure(c.build.builds[1]).ok
    done = builder.ensure(c.build.builds[2])
    assert not done.ok and "patch 0002-step.patch does not apply" in done.error
    assert calls(tmp_path) == [c.build.builds[1].rev]  # the command never ran for it


def test_a_stopped_build_is_killed_and_not_recorded(tmp_path: Path, repo: list[str]) -> None:
    (tmp_path / "build.sh").write_text(f"#!/bin/sh\necho $$ > {tmp_path}/pid\n"
                                       "sleep 60 & echo $! > " + str(tmp_path / "child")
                                       + "\nwait\n")
    camp = write_campaign(tmp_path, GIT_BUILD % repo[0])
    runner: list[BisectRunner] = []

    def on_build(b: Build, done: BuildOutcome | None) -> None:
        if done is None:
            threading.Timer(0.5, runner[0].stop).start()

    r = BisectRunner(load_campaign(camp), BisectOptions(db=tmp_path / "r.db",
                                                        reports_dir=tmp_path / "rep"),
                     on_build=on_build)
    runner.append(r)
    t0 = time.monotonic()
    res = r.run()
    assert res.status == "interrupted" and time.monotonic() - t0 < 20
    assert res.campaign_boots == 0 and res.set_aside == {}
    for f in ("pid", "child"):  # the script and what it started are gone
        pid = int((tmp_path / f).read_text())
        end = time.monotonic() + 10
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not alive(pid)
    assert not list((tmp_path / "cache").glob("*/result.json"))


def test_a_build_past_its_timeout_fails(tmp_path: Path, repo: list[str]) -> None:
    (tmp_path / "build.sh").write_text("#!/bin/sh\necho slow >&2\nsleep 60\n")
    c = load_campaign(write_campaign(tmp_path, GIT_BUILD % repo[0]
                                     + "  timeout_minutes: 0.01\n"))
    assert c.build is not None
    t0 = time.monotonic()
    done = Builder(c.build).ensure(c.build.builds[0])
    assert time.monotonic() - t0 < 20
    assert not done.ok and done.error == \
        "build command timed out after 0.01 minutes: slow"


def test_a_build_that_makes_no_kernel_fails(tmp_path: Path, repo: list[str]) -> None:
    (tmp_path / "build.sh").write_text("#!/bin/sh\ntrue\n")
    c = load_campaign(write_campaign(tmp_path, GIT_BUILD % repo[0]))
    assert c.build is not None
    done = Builder(c.build).ensure(c.build.builds[1])
    assert not done.ok
    assert done.error == ("the build command succeeded but did not make "
                          f"{c.build.builds[1].out / 'Image'}")


@pytest.mark.parametrize(("build", "where", "message"), [
    (GIT_BUILD.replace("repo: linux", "repo: nowhere"), "campaign.yaml:5:15",
     "repository not found: "),
    (GIT_BUILD.replace("repo: linux", "repo: ."), "campaign.yaml:5:15",
     "not a git repository: "),
    (GIT_BUILD.replace("%s..main", "main..main"), "campaign.yaml:5:29",
     "'main..main' has no commits in "),
    (GIT_BUILD.replace("%s..main", "v9.9..main"), "campaign.yaml:5:29",
     "git cannot list 'v9.9..main' in "),
    (GIT_BUILD.replace("%s..main", "main"), "campaign.yaml:5:29",
     "'main': give a range OLD..NEW"),
    (GIT_BUILD.replace('"{out}", "{rev}"', '"{outt}", "{rev}"'), "campaign.yaml:4:34",
     "unknown placeholder {outt} in '{outt}' (did you mean 'out'?) (known here: {src}, "
     "{out}, {rev}, {short}, {name}, {index}, {count}, {key}, {repo})"),
    (GIT_BUILD.replace("{out}/Image", "{src}/Image"), "campaign.yaml:6:41",
     "unknown placeholder {src}"),
    (GIT_BUILD.replace("{index:02d}", "{index:zz}"), "campaign.yaml:6:17",
     "{index:zz}: Unknown format code 'z' for object of type 'int'"),
    (GIT_BUILD.replace('name: "b{index:02d}"', "like: es11"), "campaign.yaml:6:17",
     "is not a guest of lab 'build-test'"),
    (GIT_BUILD.replace('name: "b{index:02d}"', "like: b00"), "", ""),
    (GIT_BUILD.replace('name: "b{index:02d}"', 'name: "k", like: b00'), "campaign.yaml:6:17",
     "builds 0 and 1 are both named 'k'"),
    (GIT_BUILD.replace('name: "b{index:02d}"', 'name: "b{count:02d}", like: b00'),
     "campaign.yaml:6:17", "build name 'b01' is a guest of lab 'build-test' already"),
    (GIT_BUILD.replace("./build.sh", "./nothing.sh"), "campaign.yaml:4:13",
     "build command not found: "),
    (GIT_BUILD.replace("  git: {repo: linux, range: \"%s..main\"}\n", ""), "campaign.yaml:4:3",
     "give either 'git' (a range of commits) or 'patches'"),
    (GIT_BUILD + "  comand: x\n", "campaign.yaml:8:3", "unknown key 'comand' (did you mean "
     "'command'?)"),
    (GIT_BUILD.replace('kernel: "{out}/Image"', 'initrd: "{out}/initrd"'), "campaign.yaml:6:41",
     "'initrd' and 'cmdline' go with 'kernel'"),
])
def test_mistakes_in_the_build_section_are_located(tmp_path: Path, repo: list[str],
                                                   build: str, where: str,
                                                   message: str) -> None:
    if "%s" in build:
        build = build % repo[0]
    camp = write_campaign(tmp_path, build)
    if not message:
        load_campaign(camp)  # the control: this one is right
        return
    with pytest.raises(ConfigError) as exc:
        load_campaign(camp)
    assert str(exc.value.where) == str(tmp_path / where)
    assert message in exc.value.message


def test_builds_and_a_build_section_exclude_each_other(tmp_path: Path,
                                                        repo: list[str]) -> None:
    camp = write_campaign(tmp_path, GIT_BUILD % repo[0], head="builds: [b00, b01]\n")
    with pytest.raises(ConfigError, match=r"campaign\.yaml:1:1: the builds come from the "
                                          r"'build' section"):
        load_campaign(camp)
    none = tmp_path / "none.yaml"
    none.write_text("lab: lab.yaml\ncell: {host: sim-1, vcpus: 4}\n")
    with pytest.raises(ConfigError, match=r"none\.yaml:1:1: give 'builds' .* or a 'build' "):
        load_campaign(none)


def test_real_hosts_need_the_builds_boot_media(tmp_path: Path, repo: list[str]) -> None:
    (tmp_path / "kernel").write_text("")
    (tmp_path / "lab.yaml").write_text(f"""name: real-lab
hosts:
  real: {{uri: "qemu:///system"}}
guests:
  el8: {{boot: {{kernel: {tmp_path}/kernel, initrd: /boot/initrd.img, cmdline: console=ttyAMA0}}}}
""")
    build = (GIT_BUILD % repo[0]).replace('name: "b{index:02d}"', "like: el8")
    camp = write_campaign(tmp_path, build.replace(', kernel: "{out}/Image"', ""))
    camp.write_text(camp.read_text().replace("host: sim-1", "host: real"))
    with pytest.raises(ConfigError, match=r"campaign\.yaml:6:10: say which file of the build "
                                          "the guest boots"):
        load_campaign(camp)
    camp = write_campaign(tmp_path, build)
    camp.write_text(camp.read_text().replace("host: sim-1", "host: real"))
    c = load_campaign(camp)
    assert c.build is not None
    g = c.lab.guest(c.builds[2]).boot
    assert g is not None and g.kernel == c.build.builds[2].out / "Image"
    assert (g.initrd, g.cmdline) == (Path("/boot/initrd.img"), "console=ttyAMA0")  # inherited
    assert c.lab.guest("el8").boot is not None  # the lab's own guest is unchanged
    assert c.lab.guest("el8").boot.kernel == tmp_path / "kernel"  # type: ignore[union-attr]


def test_mistakes_in_the_series_file_point_into_it(tmp_path: Path) -> None:
    make_series(tmp_path, 3)
    write_lab(tmp_path, n=4, culprit=2)
    write_script(tmp_path)
    series = tmp_path / "patches" / "series"
    good = series.read_text()
    camp = write_campaign(tmp_path, SERIES_BUILD)
    series.write_text(good.replace("0002-step.patch", "0002-step.patch -R"))
    with pytest.raises(ConfigError) as exc:
        load_campaign(camp)
    assert str(exc.value.where) == f"{series}:3:17"
    assert "unsupported option '-R'" in exc.value.message
    series.write_text(good.replace("0003-step.patch", "  0003-missing.patch"))
    with pytest.raises(ConfigError) as exc:
        load_campaign(camp)
    assert str(exc.value.where) == f"{series}:4:3"
    assert exc.value.message.startswith("patch file not found: ")
    series.write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match=r"campaign\.yaml:5:34: the series file .* lists no "
                                          "patch"):
        load_campaign(camp)
    series.unlink()
    with pytest.raises(ConfigError, match=r"campaign\.yaml:5:34: cannot read the series file"):
        load_campaign(camp)
    series.write_text(good)
    camp.write_text(camp.read_text().replace("base: linux", "base: linux, rev: v7"))
    with pytest.raises(ConfigError, match=r"campaign\.yaml:5:31: no commit 'v7' in "):
        load_campaign(camp)
