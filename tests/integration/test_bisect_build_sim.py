"""``harness bisect`` end to end, as a user runs it (a real process), on a campaign that
makes its own builds: a git repository of 63 commits made here, a build command (a shell
script; builds 20 to 31 "do not compile"), and the simulated lab of matrices/labs (guests
b00..b63, from b37 on 20% of boots lose a vCPU) onto which build k maps as guest bk. The
campaign must name commit 37, make only the builds it boots, set aside the ones that fail
to build, and write its page, which is then checked in a real headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chromium_page import CHROMIUM, Page, open_page

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "matrices" / "labs" / "bisect-sim-lab.yaml"
N = 64
CULPRIT = 37
UNBUILDABLE = range(20, 32)  # where a first round looks, away from 36 and 37

SCRIPT = """\
#!/bin/sh
# build.sh SRC OUT REV
echo "$3" >> "$(dirname "$0")/calls.log"
case "$(cat "$1/version")" in
  v2[0-9]|v3[01]) echo "CC arch/arm64/kernel/smp.o" >&2
          echo "error: $(cat "$1/version") does not compile" >&2; exit 2;;
esac
cat "$1/version" > "$2/Image"
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("bisect-build")
    repo = tmp / "linux"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for k in range(N):
        (repo / "version").write_text(f"v{k}\n")
        git(repo, "add", "version")
        git(repo, "commit", "-q", "-m", f"commit {k}")
    shas = git(repo, "rev-list", "--reverse", "HEAD").split()
    script = tmp / "build.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    camp = tmp / "campaign.yaml"
    camp.write_text(f"""name: bisect-build-sim
lab: {LAB}
cell: {{host: {{numa_patch: true}}, vcpus: 8}}
failure: vcpu_offline
confidence: 0.99
budget: {{boots: 20000}}
build:
  command: [./build.sh, "{{src}}", "{{out}}", "{{rev}}"]
  git: {{repo: linux, range: "{shas[0]}..main"}}
  guest: {{name: "b{{index:02d}}", kernel: "{{out}}/Image"}}
  cache: cache
""")
    r = subprocess.run([sys.executable, "-m", "harness", "bisect", str(camp), "--json",
                        "--db", str(tmp / "r.db"), "--reports-dir", str(tmp / "reports")],
                       capture_output=True, text=True, timeout=600, cwd=tmp)
    assert r.returncode == 0, r.stderr
    return {"tmp": tmp, "shas": shas, "result": json.loads(r.stdout), "stderr": r.stderr}


def test_the_campaign_builds_what_it_boots_and_names_the_culprit(campaign: dict[str, Any]
                                                                 ) -> None:
    res, shas, tmp = campaign["result"], campaign["shas"], campaign["tmp"]
    assert res["status"] == "found" and res["probability"] >= 0.99
    assert res["culprit"] == f"b{CULPRIT:02d}" and res["culprit_index"] == CULPRIT
    assert res["run_id"].startswith("bisect-build-sim-2")  # no doubled "bisect-"
    builds = res["builds"]
    assert [b["name"] for b in builds] == [f"b{k:02d}" for k in range(N)]
    assert [b["rev"] for b in builds] == shas
    made = (tmp / "calls.log").read_text().split()
    assert len(made) == len(set(made))  # each build made once
    booted = {shas[k] for k, b in enumerate(builds) if b["boots"]}
    failed = {shas[int(name[1:])] for name in res["set_aside"]}
    assert set(made) == booted | failed  # made: exactly what the campaign chose to boot
    assert len(made) <= 3 * N // 4  # far from all 64
    assert failed and failed <= {shas[k] for k in UNBUILDABLE}
    for name, why in res["set_aside"].items():
        k = int(name[1:])
        assert builds[k]["boots"] == 0
        assert why == ("build failed: build command exited with status 2: CC "
                       f"arch/arm64/kernel/smp.o | error: v{k} does not compile")
    assert "building b37 (" in campaign["stderr"]
    culprit_dir = tmp / "cache" / f"git-{shas[CULPRIT][:12]}"
    assert (culprit_dir / "out" / "Image").read_text() == f"v{CULPRIT}\n"
    page = Path(res["html"])
    assert page == tmp / "reports" / res["run_id"] / "bisect.html"


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install "
                    "chromium)")
def test_the_page_shows_the_posterior_per_build(campaign: dict[str, Any]) -> None:
    pytest.importorskip("websocket", reason="needs websocket-client (dev extra)")
    image = pytest.importorskip("PIL.Image", reason="needs Pillow (dev extra)")
    res = campaign["result"]
    page_path = Path(res["html"])
    with open_page(page_path) as page:
        _check_page(page, res, page_path, image)


def _check_page(page: Page, res: dict[str, Any], path: Path, image: Any) -> None:
    assert page.js("document.title") == f"bisect bisect-build-sim · run {res['run_id']}"
    assert page.errors() == []
    assert page.requested() == [path.as_uri()]  # nothing else fetched
    bars = page.js("Array.from(document.querySelectorAll('#posterior-chart rect.bar'))"
                   ".map(r => { const b = r.getBoundingClientRect(); return {name: "
                   "r.dataset.build, p: Number(r.dataset.posterior), cls: r.getAttribute"
                   "('class'), fill: getComputedStyle(r).fill, x: b.x, y: b.y, w: b.width,"
                   " h: b.height}; })")
    assert [b["name"] for b in bars] == [b["name"] for b in res["builds"]]  # one per build
    for bar, build in zip(bars, res["builds"], strict=True):
        assert bar["p"] == pytest.approx(build["posterior"], abs=1e-9)
    culprit = [b for b in bars if "culprit" in b["cls"].split()]
    assert [b["name"] for b in culprit] == [res["culprit"]]
    top = culprit[0]
    assert top["fill"] == "rgb(198, 40, 40)"  # the culprit's own colour
    assert {b["fill"] for b in bars if b is not top} & {top["fill"]} == set()
    assert top["h"] == max(b["h"] for b in bars) > 100  # the tallest, by its probability
    assert [b["x"] for b in bars] == sorted(b["x"] for b in bars)  # in build order
    aside = sorted(b["name"] for b in bars if "aside" in b["cls"].split())
    assert aside == sorted(res["set_aside"])
    assert page.js("document.getElementById('culprit-name').textContent") == res["culprit"]
    assert page.js("document.getElementById('culprit-probability').textContent") \
        == f"{res['probability']:.3f}"
    at = res["at_culprit"]
    assert page.js("document.querySelector('#at-culprit td.num').textContent") \
        .startswith(f"{at['failures']}/{at['boots']} = ")
    sides = page.js("Array.from(document.querySelectorAll('#second-change-table tr.check'))"
                    ".map(r => r.dataset.side)")
    assert sides == ["bad", "good"]
    rows = page.js("Array.from(document.querySelectorAll('#builds-table tbody tr'))"
                   ".map(r => [r.dataset.build, r.children[3].textContent])")
    assert rows == [[b["name"], str(b["boots"])] for b in res["builds"]]
    # and in pixels: the culprit's bar is red, where the others are not
    shot = page.send("Page.captureScreenshot", format="png")
    img = image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    red = img.getpixel((int(top["x"] + top["w"] / 2), int(top["y"] + top["h"] / 2)))
    assert red[0] > 150 and red[1] < 80 and red[2] < 80
    second = max((b for b in bars if b is not top), key=lambda b: b["h"])
    if second["h"] >= 4:
        other = img.getpixel((int(second["x"] + second["w"] / 2),
                              int(second["y"] + second["h"] - 2)))
        assert not (other[0] > 150 and other[1] < 80)
    assert page.errors() == []
