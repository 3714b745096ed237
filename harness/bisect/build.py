"""Builds the campaign makes itself: the ``build:`` section of a campaign file.

    build:
      command: [scripts/build-kernel.sh, "{src}", "{out}"]   # argv, or one string for /bin/sh
      git: {repo: ../linux, range: v5.10..v5.11}
      # or: patches: {base: ../linux, rev: v5.10, series: patches/series}
      guest: {like: el8-direct, kernel: "{out}/Image"}
      cache: /srv/builds                                     # default: ${cache}/builds
      timeout_minutes: 180

The builds are, for ``git``, the first-parent commits of the range, oldest first, after the
parent of the first one (the known-good build); for ``patches``, the base revision and then
the base with the first 1, 2, ... patches of a quilt-style series applied (the last build,
every patch, is the known-bad one). Each build boots as a guest derived from the lab guest
``like`` with its boot media taken from the build's output.

This module reads and checks the section (asking ``git`` about the repository); running the
command, lazily and cached, is ``harness.bisect.builder``. Every mistake is a ConfigError
with ``file:line:column``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import string
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from harness.errors import ConfigError, Location
from harness.inventory import NAME_PATTERN, Frozen, GuestBoot, GuestSpec, Lab
from harness.lab.paths import cache_dir, expand
from harness.yamlsrc import YamlDoc, did_you_mean

# placeholders, by where they may appear
COMMAND_KEYS = ("src", "out", "rev", "short", "name", "index", "count", "key", "repo")
NAME_KEYS = ("rev", "short", "index", "count", "key")
LIKE_KEYS = (*NAME_KEYS, "name")
MEDIA_KEYS = ("out", *LIKE_KEYS)
_SAMPLE: dict[str, Any] = {k: 0 if k in ("index", "count") else "x" for k in COMMAND_KEYS}


class GitRange(Frozen):
    repo: Path  # a git repository (relative: to the campaign file)
    range: str = Field(min_length=1)  # OLD..NEW


class PatchSeries(Frozen):
    base: Path  # the git repository the patches apply to
    rev: str = Field("HEAD", min_length=1)  # the base revision (resolved when loaded)
    series: Path  # quilt-style: one patch per line, relative to the series file, "-pN"


class BuildGuest(Frozen):
    name: str | None = None  # the build's guest name; default {short} (git), p{count:02d}-{key}
    like: str = "{name}"  # the lab guest a build boots like
    kernel: str | None = None  # what the build made, e.g. "{out}/Image" (direct kernel boot)
    initrd: str | None = None  # default: the 'like' guest's (kernel boots)
    cmdline: str | None = None
    image: str | None = None  # or a disk image, e.g. "{out}/disk.qcow2"


class BuildSection(Frozen):
    command: str | list[str]
    git: GitRange | None = None
    patches: PatchSeries | None = None
    guest: BuildGuest = Field(default_factory=BuildGuest)
    cache: Path | None = None  # default: ${cache}/builds
    timeout_minutes: float | None = Field(None, gt=0)

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | list[str]) -> str | list[str]:
        if not v or (isinstance(v, list) and not all(v)):
            raise ValueError("give the command as a list of arguments or one shell line")
        return v


@dataclass(frozen=True)
class Patch:
    path: Path
    strip: int = 1  # -pN


@dataclass(frozen=True)
class Build:
    """One build of the campaign, before or after it is made."""

    index: int  # position in the campaign (0: known good)
    name: str  # its lab guest
    rev: str  # the commit checked out (the base, for a patch series)
    count: int  # patches applied (series), commits after the known good (git range)
    key: str  # 12 hex digits: what the build is made of
    patches: tuple[Patch, ...]  # applied on top of ``rev``, in order
    dir: Path  # its cache directory; ``{out}`` is ``dir/out``
    products: tuple[Path, ...] = ()  # files the guest boots from that the command must make

    @property
    def out(self) -> Path:
        return self.dir / "out"

    @property
    def src(self) -> Path:
        return self.dir / "src"

    def values(self, repo: Path) -> dict[str, Any]:
        return {"src": str(self.src), "out": str(self.out), "rev": self.rev,
                "short": self.rev[:12], "name": self.name, "index": self.index,
                "count": self.count, "key": self.key, "repo": str(repo)}


@dataclass(frozen=True)
class BuildPlan:
    """The ``build:`` section, checked: how to make each build of the campaign."""

    command: tuple[str, ...] | str  # argv, or a /bin/sh line (placeholders shell-quoted)
    repo: Path
    source: str  # for people: "git v5.10..v5.11 of ../linux"
    workdir: Path  # the command runs here (the campaign file's folder)
    builds: tuple[Build, ...]
    timeout_s: float | None

    def argv(self, b: Build) -> list[str]:
        values = b.values(self.repo)
        if isinstance(self.command, str):
            import shlex

            return ["/bin/sh", "-c", fill(self.command, values, quote=shlex.quote)]
        return [fill(a, values) for a in self.command]


def fill(text: str, values: Mapping[str, Any], quote: Callable[[str], str] | None = None
         ) -> str:
    """``text`` with its ``{placeholders}`` replaced (checked by ``check_template``)."""
    out = []
    for literal, field, spec, _ in string.Formatter().parse(text):
        out.append(literal)
        if field is not None:
            v = format(values[field], spec or "")
            out.append(quote(v) if quote else v)
    return "".join(out)


def check_template(doc: YamlDoc, path: Sequence[str | int], text: str,
                   allowed: Sequence[str]) -> None:
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise doc.error(path, f"{text!r}: {exc} (write '{{{{' and '}}}}' for braces)") from None
    for _, field, spec, conv in parts:
        if field is None:
            continue
        if field not in allowed:
            raise doc.error(path, f"unknown placeholder {{{field}}} in {text!r}"
                            f"{did_you_mean(field, allowed)} (known here: "
                            + ", ".join(f"{{{k}}}" for k in allowed) + ")")
        if conv:
            raise doc.error(path, f"{{{field}!{conv}}}: conversions are not supported")
        try:
            format(_SAMPLE[field], spec or "")
        except ValueError as exc:
            raise doc.error(path, f"{{{field}:{spec}}}: {exc}") from None


class GitError(Exception):
    pass


def git(repo: Path, *args: str) -> str:
    try:
        r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                           timeout=300, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(str(exc)) from None
    if r.returncode:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        raise GitError(lines[0] if lines else f"git {args[0]} failed (exit {r.returncode})")
    return r.stdout


def _resolve(text: str | Path, base: Path) -> Path:
    p = Path(expand(str(text))).expanduser()
    return p if p.is_absolute() else base / p


def _repository(doc: YamlDoc, path: tuple[str, ...], repo: Path, base: Path) -> Path:
    full = _resolve(repo, base)
    if not full.exists():
        raise doc.error(path, f"repository not found: {full}")
    try:
        git(full, "rev-parse", "--git-dir")
    except GitError as exc:
        raise doc.error(path, f"not a git repository: {full} ({exc})") from None
    return full.resolve()


def _git_revs(doc: YamlDoc, sec: GitRange, repo: Path) -> list[str]:
    """The known good (the first commit's parent), then the range's first-parent chain."""
    where = ("build", "git", "range")
    old, sep, new = sec.range.partition("..")
    if not sep or not old or not new or new.startswith(".") or sec.range.startswith("-"):
        raise doc.error(where, f"{sec.range!r}: give a range OLD..NEW (e.g. v5.10..v5.11)")
    try:
        shas = git(repo, "rev-list", "--first-parent", "--reverse", "--end-of-options",
                   sec.range, "--").split()
    except GitError as exc:
        raise doc.error(where, f"git cannot list {sec.range!r} in {repo}: {exc}") from None
    if not shas:
        raise doc.error(where, f"{sec.range!r} has no commits in {repo} (is {new!r} "
                        f"after {old!r}?)")
    try:
        parent = git(repo, "rev-parse", "--verify", "-q", f"{shas[0]}^1").strip()
    except GitError:
        raise doc.error(where, f"the first commit of {sec.range!r} ({shas[0][:12]}) has no "
                        "parent to be the known-good build") from None
    return [parent, *shas]


def _series(doc: YamlDoc, sec: PatchSeries, repo: Path, base: Path
            ) -> tuple[str, list[Patch]]:
    try:
        rev = git(repo, "rev-parse", "--verify", "--end-of-options",
                  f"{sec.rev}^{{commit}}").strip()
    except GitError as exc:
        raise doc.error(("build", "patches", "rev"), f"no commit {sec.rev!r} in {repo}: "
                        f"{exc}") from None
    file = _resolve(sec.series, base)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise doc.error(("build", "patches", "series"), f"cannot read the series file "
                        f"{file}: {exc}") from None
    patches = []
    for n, line in enumerate(text.splitlines(), 1):
        body = re.sub(r"(^|\s)#.*", "", line)
        words = [(m.group(), m.start() + 1) for m in re.finditer(r"\S+", body)]
        if not words:
            continue
        (name, col), opts = words[0], words[1:]
        strip = 1
        for opt, ocol in opts:
            m = re.fullmatch(r"-p(\d+)", opt)
            if m is None:
                raise ConfigError(f"unsupported option {opt!r} (a series line is PATCH "
                                  "[-pN])", Location(str(file), n, ocol))
            strip = int(m.group(1))
        path = _resolve(name, file.parent)
        if not path.is_file():
            raise ConfigError(f"patch file not found: {path}", Location(str(file), n, col))
        patches.append(Patch(path.resolve(), strip))
    if not patches:
        raise doc.error(("build", "patches", "series"), f"the series file {file} lists no "
                        "patch")
    return rev, patches


def load_build(doc: YamlDoc, sec: BuildSection, lab: Lab, hosts: Sequence[str], base: Path
               ) -> tuple[BuildPlan, dict[str, GuestSpec]]:
    """Check the ``build:`` section of the campaign in ``doc`` (relative paths against
    ``base``): the plan, and the lab guests of its builds."""
    if (sec.git is None) == (sec.patches is None):
        path = ("build", "patches") if sec.git else ("build",)
        raise doc.error(path, "give either 'git' (a range of commits) or 'patches' (a series "
                        "applied on a base), one of them")
    cmd: tuple[str, ...] | str
    if isinstance(sec.command, str):
        check_template(doc, ("build", "command"), sec.command, COMMAND_KEYS)
        cmd = sec.command
    else:
        for i, arg in enumerate(sec.command):
            check_template(doc, ("build", "command", i), arg, COMMAND_KEYS)
        cmd = tuple(sec.command)
        _check_program(doc, cmd[0], base)
    g = sec.guest
    for key, allowed in (("name", NAME_KEYS), ("like", LIKE_KEYS), ("kernel", MEDIA_KEYS),
                         ("initrd", MEDIA_KEYS), ("cmdline", MEDIA_KEYS),
                         ("image", MEDIA_KEYS)):
        value = getattr(g, key)
        if value is not None:
            check_template(doc, ("build", "guest", key), value, allowed)
    cache = _resolve(sec.cache, base) if sec.cache else cache_dir() / "builds"
    if sec.git is not None:
        repo = _repository(doc, ("build", "git", "repo"), sec.git.repo, base)
        revs = _git_revs(doc, sec.git, repo)
        items: list[tuple[str, int, str, tuple[Patch, ...], Path]] = [
            (rev, i, rev[:12], (), cache / f"git-{rev[:12]}") for i, rev in enumerate(revs)]
        source = f"git {sec.git.range} of {repo}"
        default_name = "{short}"
    else:
        assert sec.patches is not None
        repo = _repository(doc, ("build", "patches", "base"), sec.patches.base, base)
        rev, patches = _series(doc, sec.patches, repo, base)
        h = hashlib.sha256(rev.encode())
        items = []
        for k in range(len(patches) + 1):
            if k:
                h.update(hashlib.sha256(patches[k - 1].path.read_bytes()).digest())
                h.update(f"-p{patches[k - 1].strip}".encode())
            key = h.copy().hexdigest()[:12]
            items.append((rev, k, key, tuple(patches[:k]), cache / f"series-{key}"))
        source = f"{len(patches)} patches of {_resolve(sec.patches.series, base)} on " \
                 f"{sec.patches.rev} ({rev[:12]}) of {repo}"
        default_name = "p{count:02d}-{key}"
    builds = []
    for i, (rev, count, key, pats, where) in enumerate(items):
        b = Build(i, "", rev, count, key, pats, where)
        name = fill(g.name or default_name, b.values(repo))
        builds.append(Build(i, name, rev, count, key, pats, where))
    guests, builds = _guests(doc, g, builds, lab, hosts, repo, base)
    timeout = sec.timeout_minutes * 60 if sec.timeout_minutes else None
    return BuildPlan(cmd, repo, source, base, tuple(builds), timeout), guests


def _check_program(doc: YamlDoc, program: str, base: Path) -> None:
    if "{" in program:
        return
    where = ("build", "command", 0)
    if "/" in program:
        path = _resolve(program, base)
        if not path.is_file():
            raise doc.error(where, f"build command not found: {path}")
    elif shutil.which(program) is None:
        raise doc.error(where, f"build command {program!r} is not on PATH")


def _guests(doc: YamlDoc, g: BuildGuest, builds: list[Build], lab: Lab,
            hosts: Sequence[str], repo: Path, base: Path
            ) -> tuple[dict[str, GuestSpec], list[Build]]:
    real = any(not lab.host(h).is_sim for h in hosts)
    if g.kernel and g.image:
        raise doc.error(("build", "guest", "image"), "give either 'kernel' (direct boot) or "
                        "'image' (a disk), not both")
    if (g.initrd or g.cmdline) and not g.kernel:
        raise doc.error(("build", "guest", "initrd" if g.initrd else "cmdline"), "'initrd' "
                        "and 'cmdline' go with 'kernel' (the build's kernel)")
    if real and not (g.kernel or g.image):
        raise doc.error(("build", "guest"), "say which file of the build the guest boots: "
                        "kernel: \"{out}/Image\" (direct kernel boot) or image: "
                        "\"{out}/disk.qcow2\" (the campaign's hosts are not simulated)")
    seen: dict[str, int] = {}
    guests: dict[str, GuestSpec] = {}
    out = []
    for b in builds:
        if not re.match(NAME_PATTERN, b.name):
            raise doc.error(("build", "guest", "name"), f"build {b.index} would be named "
                            f"{b.name!r}: names may only use letters, digits, '_', '.', '-'")
        if b.name in seen:
            raise doc.error(("build", "guest", "name"), f"builds {seen[b.name]} and {b.index} "
                            f"are both named {b.name!r}: use a placeholder that tells them "
                            "apart, e.g. {short} or {index}")
        seen[b.name] = b.index
        values = b.values(repo)
        like = fill(g.like, values)
        if like not in lab.guests:
            raise doc.error(("build", "guest", "like"), f"build {b.name!r} boots like "
                            f"{like!r}, which is not a guest of lab {lab.name!r}"
                            f"{did_you_mean(like, lab.guests)}; set build.guest.like to the "
                            "lab guest the builds boot like")
        if b.name in lab.guests and b.name != like:
            raise doc.error(("build", "guest", "name"), f"build name {b.name!r} is a guest of "
                            f"lab {lab.name!r} already (a build may take a lab guest's name "
                            "only to boot like it)")
        spec = lab.guest(like)
        media = {k: _resolve(fill(v, values), base) for k in ("kernel", "initrd", "image")
                 if (v := getattr(g, k)) is not None}
        if media:
            old = spec.boot if spec.boot is not None and spec.boot.kernel else None
            if "kernel" in media:
                boot = GuestBoot(kernel=media["kernel"],
                                 initrd=media.get("initrd", old.initrd if old else None),
                                 cmdline=fill(g.cmdline, values) if g.cmdline is not None
                                 else old.cmdline if old else None)
            else:
                boot = GuestBoot(image=media["image"])
            spec = spec.model_copy(update={"boot": boot})
        guests[b.name] = spec
        products = tuple(p for p in media.values() if p.is_relative_to(b.out))
        out.append(Build(b.index, b.name, b.rev, b.count, b.key, b.patches, b.dir, products))
    return guests, out
