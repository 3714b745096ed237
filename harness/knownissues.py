"""Known issues: signatures a team has already triaged, with the bug that tracks them.

A file beside the matrix, ``known-issues.yaml`` (or ``--known-issues FILE``)::

    issues:
      - id: ft2500-late-vcpu                  # optional (default: from the signature)
        signature: "CPU#: failed to come online"   # a title as reports show it
        # or: signature: {regex: "psci: failed to boot CPU\\d+"}
        bug: https://bugs.example.org/EAS-66611
        state: open                           # open | fixed | wontfix
        cells: ["node-1/*"]                   # optional: cell id patterns (fnmatch)
        hosts: [node-1]                       # optional
        title: FT-2500 secondary vCPU comes up late   # optional

An open (or wontfix) issue makes its signature *known* in the cells and hosts it names
(everywhere when it names none): the digest and the nightly exit status leave a
regression alone when every signature behind it is known, and reports mark the
signature with its bug. A ``fixed`` issue is the opposite: its signature seen again is
news (a fix that did not hold), reported as new with the bug it reopens. Every mistake
in the file is a located error (file:line:column), exit status 2.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import ConfigError
from harness.model import safe_name
from harness.yamlsrc import load_yaml, validate

FILE_NAME = "known-issues.yaml"
STATES = ("open", "fixed", "wontfix")


class _Regex(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a regular expression: {e}") from None
        return v


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str | None = None
    signature: str | _Regex
    bug: str
    state: Literal["open", "fixed", "wontfix"] = "open"
    cells: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    title: str = ""

    @field_validator("signature")
    @classmethod
    def _not_empty(cls, v: str | _Regex) -> str | _Regex:
        if isinstance(v, str) and not v.strip():
            raise ValueError("the signature is empty")
        return v

    @field_validator("bug")
    @classmethod
    def _link(cls, v: str) -> str:
        if not re.match(r"^(https?://\S+|[A-Za-z][\w.-]*-\d+)$", v.strip()):
            raise ValueError(f"{v!r} is neither a link (http[s]://...) nor a bug id "
                             "like EAS-66611")
        return v.strip()


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    issues: tuple[_Entry, ...] = Field(default=())


@dataclass(frozen=True)
class KnownIssue:
    id: str
    signature: str  # the title, or the regex when ``regex``
    bug: str
    state: str = "open"
    cells: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    title: str = ""
    regex: bool = False
    where: str = ""  # file:line of the entry

    @property
    def silences(self) -> bool:
        return self.state != "fixed"

    def matches_signature(self, title: str) -> bool:
        if self.regex:
            return re.search(self.signature, title) is not None
        return title == self.signature

    def covers(self, title: str, cell_id: str, host: str) -> bool:
        """Does this issue name ``title`` in this cell on this host?"""
        if not self.matches_signature(title):
            return False
        if self.cells and not any(fnmatch.fnmatchcase(cell_id, p) for p in self.cells):
            return False
        return not self.hosts or host in self.hosts

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "signature": self.signature, "regex": self.regex,
                "bug": self.bug, "state": self.state, "title": self.title,
                "url": self.bug if self.bug.startswith(("http://", "https://")) else None}


@dataclass(frozen=True)
class KnownIssues:
    issues: tuple[KnownIssue, ...] = ()
    file: str | None = None

    def matching(self, title: str, cell_id: str, host: str) -> tuple[KnownIssue, ...]:
        return tuple(k for k in self.issues if k.covers(title, cell_id, host))

    def known(self, title: str, cell_id: str, host: str) -> tuple[KnownIssue, ...]:
        """The open issues that make ``title`` known here (empty: it is news)."""
        return tuple(k for k in self.matching(title, cell_id, host) if k.silences)

    def reopened(self, title: str, cell_id: str, host: str) -> tuple[KnownIssue, ...]:
        """Fixed issues whose signature is seen again here."""
        return tuple(k for k in self.matching(title, cell_id, host) if not k.silences)

    def __bool__(self) -> bool:
        return bool(self.issues)


def load_known_issues(path: str | Path) -> KnownIssues:
    file = Path(path)
    doc = load_yaml(file)
    if doc.data is None:
        return KnownIssues((), str(file))
    if not isinstance(doc.data, dict):
        raise doc.error((), "a known-issues file is a mapping with 'issues': a list")
    spec: _File = validate(_File, doc)
    out: list[KnownIssue] = []
    seen: dict[str, int] = {}
    for i, e in enumerate(spec.issues):
        regex = isinstance(e.signature, _Regex)
        sig = e.signature.regex if isinstance(e.signature, _Regex) else e.signature
        iid = e.id or safe_name(re.sub(r"\W+", "_", sig).strip("_").lower())[:60] or f"k{i}"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", iid):
            raise doc.error(("issues", i, "id"), f"issue id {iid!r} may only use letters, "
                            "digits, '_', '.', '-'")
        if iid in seen:
            raise doc.error(("issues", i, "id") if e.id else ("issues", i),
                            f"issue id {iid!r} is used twice (first in entry {seen[iid] + 1})")
        seen[iid] = i
        loc = doc.loc(("issues", i))
        out.append(KnownIssue(iid, sig, e.bug, e.state, e.cells, e.hosts, e.title, regex,
                              f"{loc.file}:{loc.line}"))
    return KnownIssues(tuple(out), str(file))


def beside(matrix_file: str | Path | None) -> Path | None:
    """The ``known-issues.yaml`` beside a matrix file, if there is one."""
    if not matrix_file:
        return None
    p = Path(matrix_file).parent / FILE_NAME
    return p if p.is_file() else None


def find_known_issues(explicit: str | Path | None,
                      matrix_files: Iterable[str | Path | None] = ()) -> KnownIssues:
    """``explicit`` when given (it must exist), else the file beside the first matrix file
    that has one, else none."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise ConfigError(f"no known-issues file at {explicit}")
        return load_known_issues(explicit)
    for m in matrix_files:
        p = beside(m)
        if p is not None:
            return load_known_issues(p)
    return KnownIssues()


def for_kcidb(known: KnownIssues, titles: Iterable[str]) -> list[dict[str, Any]]:
    """Open issues as the KCIDB writer takes them, with the run's titles they match."""
    titles = list(dict.fromkeys(titles))
    out = []
    for k in known.issues:
        matched = [t for t in titles if k.matches_signature(t)]
        if k.silences and matched:
            out.append({"id": k.id, "title": k.title or matched[0], "signatures": matched,
                        "url": k.as_dict()["url"], "state": k.state})
    return out
