"""YAML with positions: load a file into plain Python values and remember where each
key and value stands, so every validation error can say ``file:line:column``.

Paths are tuples of keys and list indices, e.g. ``("hosts", "node-1", "slots")``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.errors import ConfigError, ConfigErrors, Location

PathT = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A loaded YAML document: its data and the positions of every key and value."""

    file: Path
    data: Any
    value_locs: dict[PathT, Location] = field(default_factory=dict)
    key_locs: dict[PathT, Location] = field(default_factory=dict)

    def loc(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        """The position of ``path`` (its key when ``key``), or of its nearest parent."""
        p = tuple(path)
        while True:
            table = self.key_locs if key else self.value_locs
            if p in table:
                return table[p]
            if key and p in self.value_locs:
                return self.value_locs[p]
            if not p:
                return Location(str(self.file), 1, 1)
            p = p[:-1]
            key = False

    def error(self, path: Sequence[str | int], message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(message, self.loc(path, key=key))


def _mark(file: Path, node: yaml.Node | yaml.Event) -> Location:
    m = node.start_mark
    if m is None:
        return Location(str(file), 1, 1)
    return Location(str(file), m.line + 1, m.column + 1)


# What a lab or matrix file never needs, refused with a location (hostile or broken input
# must not make the loader hang, recurse without end or eat the memory: issue 14).
MAX_FILE_BYTES = 1 << 20  # a lab of thousands of hosts is a few hundred KiB
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_ALIASES = 200  # alias uses (``*name``) in one file
MAX_VALUES = 50_000  # values once aliases are expanded ("billion laughs")
TAG = "tag:yaml.org,2002:"
# plain data only: a tag naming another type (``!!binary``, ``!custom``, ``!!python/...``)
# is refused; timestamps are kept as the text written (a date is not a type we read)
ALLOWED_TAGS = frozenset(TAG + t for t in ("str", "int", "float", "bool", "null", "map",
                                           "seq", "timestamp", "merge"))
# characters XML 1.0 cannot hold, plus C1 controls and DEL: no name, path, URI or command
# line needs them, and they would reach domain XML, JUnit and terminals raw
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff"
                        "\ufffe\uffff]")


def forbidden_char(text: str) -> str | None:
    """A description of the first character ``text`` may not hold, or None."""
    m = _FORBIDDEN.search(text)
    return None if m is None else f"U+{ord(m.group()):04X}"


def _location_of(text: str, index: int, file: Path) -> Location:
    line = text.count("\n", 0, index) + 1
    return Location(str(file), line, index - (text.rfind("\n", 0, index) + 1) + 1)


def read_text(file: Path, *, limit: int = MAX_FILE_BYTES) -> str:
    """``file`` as text: UTF-8 (a BOM is dropped), at most ``limit`` bytes; a decoding
    error says its line and column. ConfigError for anything that cannot be read."""
    try:
        if file.is_dir():
            raise ConfigError(f"{file} is a folder, not a file")
        with open(file, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"file not found: {file}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read {file}: {why}") from None
    if len(data) > limit:
        head = data[:limit].decode("utf-8", errors="replace")
        raise ConfigError(f"file is larger than {limit} bytes (the limit for a lab or "
                          "matrix file)", _location_of(head, len(head), file))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[:exc.start].decode("utf-8", errors="replace")
        raise ConfigError(f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded "
                          "(save the file as UTF-8)", _location_of(head, len(head), file)
                          ) from None


def load_yaml(file: Path) -> YamlDoc:
    """Read ``file``; YAML syntax errors become a ConfigError with the position."""
    return load_yaml_text(read_text(file), file)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer with a depth limit and a count of alias uses."""

    def __init__(self, text: str, file: Path) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(f"more than {MAX_ALIASES} aliases in one file",
                                  _mark(self.file, self.peek_event()))
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep",
                              _mark(self.file, self.peek_event()))
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_FLOW = re.compile(r"""[\[\]{}'"#\n]""")


def _check_flow_depth(text: str, file: Path) -> None:
    """Refuse deep ``[`` / ``{`` nesting before PyYAML sees it: its scanner keeps every
    open flow level's possible key and rescans them, quadratic in the depth (5,000 ``[``
    cost seconds, a megabyte of them hours). Brackets in quotes and comments do not
    count; one in a block scalar might, which needs more than MAX_DEPTH unclosed ones."""
    depth = 0
    quote = ""
    pos = 0
    n = len(text)
    while pos < n:
        m = _FLOW.search(text, pos)
        if m is None:
            return
        c, pos = m.group(), m.end()
        if quote:
            if c == "\n" or c != quote:
                continue
            if quote == '"' and _escaped(text, m.start()):
                continue
            if quote == "'" and text.startswith("'", pos):  # '' inside single quotes
                pos += 1
                continue
            quote = ""
        elif c in "'\"":
            prev = text[m.start() - 1] if m.start() else " "
            if prev in " \t\n[{,:-?":  # a quote that starts a scalar (not it's, 5")
                quote = c
        elif c == "#":
            if m.start() == 0 or text[m.start() - 1] in " \t\n":
                end = text.find("\n", pos)
                pos = n if end < 0 else end
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep",
                                  _location_of(text, m.start(), file))
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "\n" and depth == 0:
            quote = ""


def _escaped(text: str, i: int) -> bool:
    k = i - 1
    while k >= 0 and text[k] == "\\":
        k -= 1
    return (i - 1 - k) % 2 == 1


def _compose(text: str, file: Path) -> yaml.Node | None:
    _check_flow_depth(text, file)
    loader: _Loader | None = None
    try:
        loader = _Loader(text, file)
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(str(file), mark.line + 1, mark.column + 1) if mark else None
        what = " ".join(str(p).strip() for p in (exc.context, exc.problem) if p) or str(exc)
        if exc.problem == "second occurrence" and exc.context_mark is not None:
            what = f"{exc.context} at line {exc.context_mark.line + 1}, second occurrence here"
        raise ConfigError(f"YAML syntax error: {what}", where) from None
    except yaml.reader.ReaderError as exc:
        what = f"U+{exc.character:04X}" if isinstance(exc.character, int) else "a character"
        raise ConfigError(f"{what} is not allowed in a YAML file (control character)",
                          _location_of(text, exc.position, file)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error in {file}: {exc}") from None
    except RecursionError:  # not reached with MAX_DEPTH; a last guard, still located
        raise ConfigError("nested too deeply", Location(str(file), 1, 1)) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_text(text: str, file: Path) -> YamlDoc:
    node = _compose(text, file)
    doc = YamlDoc(file=file, data=None)
    if node is None:
        doc.data = {}
        return doc
    constructor = yaml.SafeLoader("")  # used only for scalar conversion
    building: set[int] = set()  # nodes being built: meeting one again is a recursive alias
    budget = [MAX_VALUES]

    def scalar(n: yaml.ScalarNode) -> Any:
        if n.tag == TAG + "timestamp":
            return n.value  # kept as written: no lab value is a date
        try:
            value = constructor.construct_object(n, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            raise ConfigError(f"cannot read the value {n.value[:40]!r}: {exc}",
                              _mark(file, n)) from None
        if isinstance(value, str) and (bad := forbidden_char(value)):
            raise ConfigError(f"text holds the control character {bad}, which no lab or "
                              "matrix value may hold", _mark(file, n))
        return value

    def key_of(k: yaml.Node) -> str:
        if not isinstance(k, yaml.ScalarNode):
            raise ConfigError("mapping keys must be plain values", _mark(file, k))
        if k.tag not in ALLOWED_TAGS:
            raise ConfigError(f"tag {k.tag!r} is not allowed (plain values only)",
                              _mark(file, k))
        if k.tag == TAG + "null":
            raise ConfigError(f"a key cannot be null ({k.value or 'empty'}): name it",
                              _mark(file, k))
        if bad := forbidden_char(k.value):
            raise ConfigError(f"key holds the control character {bad}", _mark(file, k))
        return str(k.value)  # the text as written: `8:`, `1.0:`, `2024-01-01:` stay text

    def merged(v: yaml.Node, path: PathT) -> list[tuple[str, Any, PathT]]:
        """The (key, value) pairs a ``<<`` brings (earlier mappings win)."""
        sources = v.value if isinstance(v, yaml.SequenceNode) else [v]
        out: list[tuple[str, Any, PathT]] = []
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise ConfigError("'<<' merges a mapping (or a list of mappings), not "
                                  f"{_kind(src)}", _mark(file, src))
            value = build(src, path)
            out += [(k, value[k], path) for k in value]
        return out

    def build(n: yaml.Node, path: PathT) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(f"more than {MAX_VALUES} values once aliases are expanded",
                              _mark(file, n))
        if n.tag not in ALLOWED_TAGS and n.tag != "!":
            raise ConfigError(f"tag {n.tag!r} is not allowed (plain values only: text, "
                              "numbers, booleans, lists, mappings)", _mark(file, n))
        if id(n) in building:
            raise ConfigError("an alias refers to a value that contains it (recursive "
                              "alias)", _mark(file, n))
        doc.value_locs.setdefault(path, _mark(file, n))
        if isinstance(n, yaml.ScalarNode):
            return scalar(n)
        building.add(id(n))
        try:
            if isinstance(n, yaml.SequenceNode):
                return [build(item, (*path, i)) for i, item in enumerate(n.value)]
            out: dict[Any, Any] = {}
            inherited: dict[str, Any] = {}
            for k_node, v_node in n.value:
                if k_node.tag == TAG + "merge":
                    for k, v, _ in merged(v_node, path):
                        inherited.setdefault(k, v)
                    continue
                key = key_of(k_node)
                if key in out:
                    raise ConfigError(f"duplicate key {key!r}", _mark(file, k_node))
                doc.key_locs[(*path, key)] = _mark(file, k_node)
                out[key] = build(v_node, (*path, key))
            for k, v in inherited.items():
                out.setdefault(k, v)
            return out
        finally:
            building.discard(id(n))

    doc.data = build(node, ())
    return doc


def _kind(n: yaml.Node) -> str:
    if isinstance(n, yaml.SequenceNode):
        return "a list"
    return f"the value {n.value!r}" if isinstance(n, yaml.ScalarNode) else "this"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names allowed at ``loc`` inside ``model`` (best effort, for did-you-mean)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            f = current.model_fields.get(str(part))
            if f is None:
                return []
            current = _unwrap(f.annotation)
        elif isinstance(part, str) and _is_dict_of_models(current):
            current = _unwrap(current.__args__[1])
        else:
            continue
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    args = getattr(tp, "__args__", None)
    if args and getattr(tp, "__origin__", None) is not dict:
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        dicts = [a for a in args if getattr(a, "__origin__", None) is dict]
        if models:
            return models[0]
        if dicts:
            return dicts[0]
    return tp


def _is_dict_of_models(tp: Any) -> bool:
    return getattr(tp, "__origin__", None) is dict


def validate(model: type[BaseModel], doc: YamlDoc, path: PathT = (), data: Any = None,
             context: dict[str, Any] | None = None) -> Any:
    """Validate ``data`` (default: the value at ``path`` in ``doc``) against ``model``;
    pydantic's errors become ConfigErrors that point into the file."""
    if data is None:
        data = doc.data
        for part in path:
            data = data[part]
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        errors: list[ConfigError] = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not _is_union_tag(p, err["loc"]))
            full = (*path, *loc)
            if err["type"] == "extra_forbidden":
                name = str(loc[-1]) if loc else "?"
                allowed = _fields_at(model, loc[:-1])
                hint = did_you_mean(name, allowed)
                if not hint and allowed:
                    hint = f" (allowed: {', '.join(sorted(allowed))})"
                errors.append(doc.error(full, f"unknown key {name!r}{hint}", key=True))
            elif err["type"] == "missing":
                errors.append(doc.error(full[:-1], f"missing required key {str(full[-1])!r}"))
            else:
                msg = err["msg"]
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, "):]
                elif (err["type"] == "string_pattern_mismatch"
                      and (err.get("ctx") or {}).get("pattern") == _NAME_PATTERN):
                    msg = ("a name may only use letters, digits, '_', '.', '-' (starting with "
                           f"a letter or digit, on one line), not {repr(err.get('input'))[:60]}")
                elif err["type"] in _TYPE_ERRORS:
                    got = repr(err.get("input"))
                    msg = f"{_TYPE_ERRORS[err['type']]}, not {got[:60]}"
                what = ".".join(str(p) for p in full)
                errors.append(doc.error(full, f"{what}: {msg}"))
        errors.sort(key=lambda e: (e.where.line, e.where.column) if e.where else (0, 0))
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None


_TYPE_ERRORS = {
    "int_type": "expected a whole number (no true/false, 2.0 or '2')",
    "float_type": "expected a number (no true/false or quoted text)",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "finite_number": "expected a finite number",
    "path_type": "expected a file path",
    "dict_type": "expected a mapping (key: value)",
    "list_type": "expected a list",
}
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # harness.inventory.NAME_PATTERN


def _is_union_tag(part: Any, loc: tuple[Any, ...]) -> bool:
    # pydantic adds the member type name (e.g. 'str', 'function-after[...]') to locs in unions
    return isinstance(part, str) and ("[" in part or part.startswith("constrained-")
                                      or part in {"str", "int", "float", "bool", "list[str]",
                                                  "dict[str,any]"})
