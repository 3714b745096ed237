"""YAML with positions: load a file into plain Python values and remember where each
key and value stands, so every validation error can say ``file:line:column``.

Paths are tuples of keys and list indices, e.g. ``("hosts", "node-1", "slots")``.
"""

from __future__ import annotations

import difflib
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


def _mark(file: Path, node: yaml.Node) -> Location:
    m = node.start_mark
    return Location(str(file), m.line + 1, m.column + 1)


def load_yaml(file: Path) -> YamlDoc:
    """Read ``file``; YAML syntax errors become a ConfigError with the position."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"file not found: {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {file}: {exc}") from None
    return load_yaml_text(text, file)


def load_yaml_text(text: str, file: Path) -> YamlDoc:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(str(file), mark.line + 1, mark.column + 1) if mark else None
        raise ConfigError(f"YAML syntax error: {exc.problem or exc}", where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML error in {file}: {exc}") from None
    doc = YamlDoc(file=file, data=None)
    if node is None:
        doc.data = {}
        return doc
    constructor = yaml.SafeLoader("")  # used only for scalar conversion

    def build(n: yaml.Node, path: PathT) -> Any:
        doc.value_locs[path] = _mark(file, n)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            constructor.flatten_mapping(n)
            for k_node, v_node in n.value:
                if not isinstance(k_node, yaml.ScalarNode):
                    raise ConfigError("mapping keys must be plain values", _mark(file, k_node))
                key = constructor.construct_object(k_node, deep=True)
                if isinstance(key, bool | int | float):
                    key = str(key) if not isinstance(key, bool) else str(key).lower()
                if key in out:
                    raise ConfigError(f"duplicate key {key!r}", _mark(file, k_node))
                doc.key_locs[(*path, key)] = _mark(file, k_node)
                out[key] = build(v_node, (*path, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*path, i)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    doc.data = build(node, ())
    return doc


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
                what = ".".join(str(p) for p in full)
                errors.append(doc.error(full, f"{what}: {msg}"))
        errors.sort(key=lambda e: (e.where.line, e.where.column) if e.where else (0, 0))
        raise (errors[0] if len(errors) == 1 else ConfigErrors(errors)) from None


def _is_union_tag(part: Any, loc: tuple[Any, ...]) -> bool:
    # pydantic adds the member type name (e.g. 'str', 'function-after[...]') to locs in unions
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool",
                                                              "list[str]", "dict[str,any]"})
