"""Making a campaign's builds, one at a time and only those the campaign boots.

Each build has a cache directory (``harness.bisect.build``), keyed by what the build is
made of (the commit; the base and the patches' contents), shared by every campaign:

    <cache>/git-<sha12>/ or series-<key>/
      out/          {out}: what the command made (the guest boots from here)
      src/          {src}: a fresh checkout (git clone --shared), patches applied with
                    git apply; removed when the command ends
      stdout.log, stderr.log
      result.json   written last: the build made it, or failed (and why)
      lock          held while building (two campaigns never build one key at once)

A build with a ``result.json`` is never made again: a success is reused, a failure stays a
failure (remove the directory to try again). A stopped campaign kills the command's process
group and records nothing, so the build is made again next time.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .build import Build, BuildPlan, GitError, git

RESULT = "result.json"
TAIL_LINES = 12
TAIL_CHARS = 1500


@dataclass(frozen=True)
class BuildOutcome:
    build: Build
    ok: bool
    cached: bool = False  # made by an earlier campaign or invocation
    seconds: float = 0.0
    error: str = ""  # why the build is unusable (the command's stderr tail)
    interrupted: bool = False  # stopped on request: nothing recorded


class _Failed(Exception):
    pass


class Builder:
    """``Builder(plan, stop).ensure(build)``: the build, made if it was not."""

    def __init__(self, plan: BuildPlan, stop: Callable[[], bool] = lambda: False) -> None:
        self.plan = plan
        self._stop = stop

    def recorded(self, b: Build) -> BuildOutcome | None:
        """What an earlier attempt found, or None if the build has to be made."""
        try:
            data = json.loads((b.dir / RESULT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("ok"):
            if not all(p.is_file() for p in b.products):
                return None  # its output was removed: make it again
            return BuildOutcome(b, True, cached=True, seconds=float(data.get("seconds", 0)))
        return BuildOutcome(b, False, cached=True, seconds=float(data.get("seconds", 0)),
                            error=f"{data.get('error', 'failed')} (recorded in {b.dir}; "
                                  "remove it to build again)")

    def ensure(self, b: Build) -> BuildOutcome:
        found = self.recorded(b)
        if found is not None:
            return found
        b.dir.mkdir(parents=True, exist_ok=True)
        with _locked(b.dir / "lock"):
            found = self.recorded(b)  # another campaign may have made it meanwhile
            return found if found is not None else self._make(b)

    def _make(self, b: Build) -> BuildOutcome:
        t0 = time.monotonic()
        (b.dir / RESULT).unlink(missing_ok=True)
        for d in (b.src, b.out):
            shutil.rmtree(d, ignore_errors=True)
        b.out.mkdir(parents=True)
        try:
            self._checkout(b)
            rc = self._run(b)
            if rc is None:
                return BuildOutcome(b, False, seconds=time.monotonic() - t0,
                                    error="stopped", interrupted=True)
            if rc != 0:
                raise _Failed(self._why(b, rc))
            missing = [p for p in b.products if not p.is_file()]
            if missing:
                raise _Failed(f"the build command succeeded but did not make {missing[0]}")
        except _Failed as exc:
            return self._record(b, False, str(exc), t0)
        finally:
            shutil.rmtree(b.src, ignore_errors=True)
        return self._record(b, True, "", t0)

    def _checkout(self, b: Build) -> None:
        repo = self.plan.repo
        try:
            git(repo, "clone", "--quiet", "--shared", "--no-checkout", str(repo), str(b.src))
            git(b.src, "checkout", "--quiet", "--detach", b.rev)
        except GitError as exc:
            raise _Failed(f"cannot check out {b.rev[:12]} of {repo}: {exc}") from None
        for p in b.patches:
            try:
                git(b.src, "apply", f"-p{p.strip}", "--whitespace=nowarn", str(p.path))
            except GitError as exc:
                raise _Failed(f"patch {p.path.name} does not apply: {exc}") from None

    def _run(self, b: Build) -> int | None:
        """The command's exit status (-N: killed by signal N, -999: timed out), or None
        when the campaign was stopped."""
        argv = self.plan.argv(b)
        env = {**os.environ, **{f"HARNESS_BUILD_{k.upper()}": str(v)
                                for k, v in b.values(self.plan.repo).items()}}
        timeout = self.plan.timeout_s
        with open(b.dir / "stdout.log", "wb") as so, open(b.dir / "stderr.log", "wb") as se:
            try:
                proc = subprocess.Popen(argv, cwd=self.plan.workdir, env=env,
                                        stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                                        start_new_session=True)
            except OSError as exc:
                raise _Failed(f"cannot run {argv[0]}: {exc}") from None
            end = None if timeout is None else time.monotonic() + timeout
            try:
                while True:
                    try:
                        return proc.wait(timeout=0.2)
                    except subprocess.TimeoutExpired:
                        pass
                    if self._stop():
                        _kill(proc)
                        return None
                    if end is not None and time.monotonic() > end:
                        _kill(proc)
                        return -999
            except BaseException:
                _kill(proc)
                raise

    def _why(self, b: Build, rc: int) -> str:
        if rc == -999:
            head = f"build command timed out after {(self.plan.timeout_s or 0) / 60:g} minutes"
        elif rc < 0:
            head = f"build command killed by signal {-rc}"
        else:
            head = f"build command exited with status {rc}"
        tail = stderr_tail(b.dir / "stderr.log")
        return f"{head}: {tail}" if tail else f"{head} (nothing on stderr)"

    def _record(self, b: Build, ok: bool, error: str, t0: float) -> BuildOutcome:
        seconds = time.monotonic() - t0
        data = {"ok": ok, "error": error, "seconds": round(seconds, 3), "name": b.name,
                "rev": b.rev, "count": b.count, "key": b.key,
                "finished": datetime.now(UTC).isoformat(timespec="seconds")}
        tmp = b.dir / f"{RESULT}.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, b.dir / RESULT)
        return BuildOutcome(b, ok, seconds=seconds, error=error)


def stderr_tail(path: Path) -> str:
    """The last lines of a log, on one line each joined by ' | '."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()][-TAIL_LINES:]
    tail = " | ".join(lines)
    return tail if len(tail) <= TAIL_CHARS else "..." + tail[-TAIL_CHARS:]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """End the command and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10.0)
        os.killpg(proc.pid, signal.SIGKILL)  # what ignored SIGTERM
    except ProcessLookupError:
        pass
    proc.wait()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
