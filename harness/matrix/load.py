"""Load and validate a matrix file against its lab; every error is located."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.backend.placement import PLACEMENT_AXES, PlacementError, check_value
from harness.cycle import MAX_CYCLES
from harness.errors import ConfigError, ConfigErrors
from harness.inventory import Frozen, Int, Lab, Name, Num, Text, load_lab, name_problem
from harness.matrix.expand import CORE_AXES, Axis, MatrixSpec, Override, expand, points
from harness.model import Cell, Expectation, RebootMode, Timeouts
from harness.yamlsrc import PathT, YamlDoc, did_you_mean, load_yaml, validate

KNOWN_AXES = (*CORE_AXES, "reboot", "memory_mib", "numa_nodes", "cycles", *PLACEMENT_AXES)
MAX_CELLS = 20_000  # cells of one matrix (the product is checked before it is built)
MAX_TOTAL_BOOTS = 10_000_000  # boots of one run
MAX_VALUE_CHARS = 128  # an axis value is part of the cell id
DAY = 86400.0  # no timeout is longer


class ExpectModel(Frozen):
    vcpu_offline: Num | None = Field(0.0, ge=0.0, le=1.0)
    boot_failure: Num | None = Field(0.0, ge=0.0, le=1.0)
    confidence: Num = Field(0.95, gt=0.5, lt=1.0)
    rule_out: Num | None = Field(None, gt=0.0, lt=1.0)


class PartialExpect(Frozen):
    vcpu_offline: Num | None = Field(None, ge=0.0, le=1.0)
    boot_failure: Num | None = Field(None, ge=0.0, le=1.0)
    confidence: Num | None = Field(None, gt=0.5, lt=1.0)
    rule_out: Num | None = Field(None, gt=0.0, lt=1.0)


class TimeoutsModel(Frozen):
    boot: Num = Field(300.0, gt=0, le=DAY)
    ssh: Num = Field(10.0, gt=0, le=DAY)
    command: Num = Field(60.0, gt=0, le=DAY)
    shutdown: Num = Field(30.0, ge=0, le=DAY)


class PartialTimeouts(Frozen):
    boot: Num | None = Field(None, gt=0, le=DAY)
    ssh: Num | None = Field(None, gt=0, le=DAY)
    command: Num | None = Field(None, gt=0, le=DAY)
    shutdown: Num | None = Field(None, ge=0, le=DAY)


class OverrideModel(Frozen):
    match: dict[str, Any] = Field(min_length=1)
    boots: Int | None = Field(None, ge=1, le=1_000_000)
    expect: PartialExpect | None = None
    timeouts: PartialTimeouts | None = None


class AdaptiveModel(Frozen):
    """Sequential stopping per cell (optional; fixed N is the default)."""

    method: Literal["sprt"] = "sprt"
    min_boots: Int = Field(5, ge=1)
    alpha: Num = Field(0.05, gt=0, lt=0.5)
    beta: Num = Field(0.05, gt=0, lt=0.5)


class MatrixModel(Frozen):
    name: Name
    description: Text = ""
    lab: Path
    axes: dict[str, Any]
    boots: Int = Field(10, ge=1, le=1_000_000)
    reboot: RebootMode = RebootMode.COLD
    cycles: Int | None = Field(None, ge=1, le=MAX_CYCLES)  # reboot: cpu-cycle
    memory_mib: Int = Field(2048, ge=64, le=1 << 22)
    timeouts: TimeoutsModel = Field(default_factory=TimeoutsModel)
    expect: ExpectModel = Field(default_factory=ExpectModel)
    include: list[dict[str, Any]] = Field(default_factory=list)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    overrides: list[OverrideModel] = Field(default_factory=list)
    adaptive: AdaptiveModel | None = None


class Matrix:
    """A validated matrix: its spec, its lab and its cells."""

    def __init__(self, model: MatrixModel, spec: MatrixSpec, lab: Lab, doc: YamlDoc) -> None:
        self.model = model
        self.spec = spec
        self.lab = lab
        self.doc = doc
        self.file = doc.file
        self.cells: list[Cell] = expand(spec)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def total_boots(self) -> int:
        return sum(c.boots for c in self.cells)

    def cell(self, cell_id: str) -> Cell:
        for c in self.cells:
            if c.id == cell_id:
                return c
        raise ConfigError(f"no cell {cell_id!r} in matrix {self.name!r}"
                          + did_you_mean(cell_id, [c.id for c in self.cells]))


def load_matrix(path: str | Path) -> Matrix:
    file = Path(path)
    doc = load_yaml(file)
    if not isinstance(doc.data, dict):
        raise doc.error((), "a matrix file is a mapping with 'name', 'lab' and 'axes'")
    model: MatrixModel = validate(MatrixModel, doc, context={"base_dir": file.parent})
    lab_path = model.lab if model.lab.is_absolute() else file.resolve().parent / model.lab
    if not str(model.lab).strip() or str(model.lab) == ".":
        raise doc.error(("lab",), "lab: name the lab file (e.g. labs/my-lab.yaml)")
    if not lab_path.exists():
        raise doc.error(("lab",), f"lab file not found: {lab_path}")
    if not lab_path.is_file():
        raise doc.error(("lab",), f"lab: {lab_path} is not a file")
    lab = load_lab(lab_path)
    spec = _Builder(doc, model, lab).build()
    matrix = Matrix(model, spec, lab, doc)
    if matrix.total_boots > MAX_TOTAL_BOOTS:
        raise doc.error(("boots",), f"the matrix asks for {matrix.total_boots} boots, more "
                        f"than {MAX_TOTAL_BOOTS} in one run: split it")
    return matrix


class _Builder:
    def __init__(self, doc: YamlDoc, model: MatrixModel, lab: Lab) -> None:
        self.doc, self.model, self.lab = doc, model, lab
        self.errors: list[ConfigError] = []
        self.attr_names = sorted({k for h in lab.hosts.values() for k in h.attributes})

    def fail(self, path: PathT, message: str, *, key: bool = False) -> None:
        self.errors.append(self.doc.error(path, message, key=key))

    def raise_if_errors(self) -> None:
        if self.errors:
            errs = sorted(self.errors, key=lambda e: (e.where.line, e.where.column)
                          if e.where else (0, 0))
            raise errs[0] if len(errs) == 1 else ConfigErrors(errs)

    # -- axes ---------------------------------------------------------------------------
    def build(self) -> MatrixSpec:
        m = self.model
        raw = m.axes
        for required in CORE_AXES:
            if required not in raw:
                self.fail(("axes",), f"axes: missing required axis {required!r}")
        for name in raw:
            if name not in KNOWN_AXES:
                hint = did_you_mean(name, KNOWN_AXES)
                if hint:
                    self.fail(("axes", name), f"unknown axis {name!r}{hint}", key=True)
                elif problem := name_problem(name):
                    self.fail(("axes", name), f"axis {problem}", key=True)
        self.raise_if_errors()
        axes = [
            Axis("host", tuple(self.hosts(raw["host"]))),
            Axis("guest", tuple(self.guests(raw["guest"]))),
            Axis("vcpus", tuple(self.ints(("axes", "vcpus"), raw["vcpus"], 1, 512))),
        ]
        for name, values in raw.items():
            if name in CORE_AXES:
                continue
            path: PathT = ("axes", name)
            if name == "reboot":
                axes.append(Axis(name, tuple(self.reboots(path, values))))
            elif name == "memory_mib":
                axes.append(Axis(name, tuple(self.ints(path, values, 64, 1 << 22))))
            elif name == "cycles":
                axes.append(Axis(name, tuple(self.ints(path, values, 1, MAX_CYCLES))))
            elif name == "numa_nodes":
                axes.append(Axis(name, tuple(self.ints(path, values, 1, 512))))
            elif name in PLACEMENT_AXES:
                axes.append(Axis(name, tuple(self.placements(path, values))))
            else:
                axes.append(Axis(name, tuple(self.scalars(path, values))))
        self.raise_if_errors()
        for axis in axes:
            if not axis.values:
                self.fail(("axes", axis.name), f"axis {axis.name!r} has no values: empty "
                          "product")
            # values that print the same make the same cell id ('1' and 1): one cell twice
            dup = [v for v, n in Counter(map(str, axis.values)).items() if n > 1]
            if dup:
                self.fail(("axes", axis.name), f"axis {axis.name!r} lists {dup[0]!r} twice "
                          "(values that print the same name the same cell): duplicate cells")
        self.raise_if_errors()
        size = 1
        for axis in axes:
            size *= len(axis.values)
        if size > MAX_CELLS:
            self.fail(("axes",), f"the axes make {size} cells, more than {MAX_CELLS}: split "
                      "the matrix")
        self.raise_if_errors()
        axis_names = [a.name for a in axes]
        host_attrs = tuple((h, tuple(sorted(self.lab.hosts[h].attributes.items())))
                           for h in self.lab.hosts)
        exclude = tuple(self.selector(("exclude", i), e, axis_names)
                        for i, e in enumerate(m.exclude))
        include = tuple(self.include_point(("include", i), e, axes)
                        for i, e in enumerate(m.include))
        overrides = tuple(
            Override(
                match=self.selector(("overrides", i, "match"), o.match, axis_names),
                boots=o.boots,
                expect=tuple(o.expect.model_dump(exclude_unset=True).items())
                if o.expect else (),
                timeouts=tuple(o.timeouts.model_dump(exclude_unset=True).items())
                if o.timeouts else (),
            )
            for i, o in enumerate(m.overrides)
        )
        self.raise_if_errors()
        spec = MatrixSpec(
            name=m.name,
            axes=tuple(axes),
            boots=m.boots,
            reboot=m.reboot,
            cycles=m.cycles,
            memory_mib=m.memory_mib,
            expect=Expectation(**m.expect.model_dump()),
            timeouts=Timeouts(**m.timeouts.model_dump()),
            exclude=exclude,
            include=include,
            overrides=overrides,
            host_attrs=host_attrs,
        )
        self.check_expansion(spec)
        self.check_cycle_hosts(spec)
        return spec

    def check_cycle_hosts(self, spec: MatrixSpec) -> None:
        """``reboot: cpu-cycle`` needs a real guest answering the trial command: a
        simulated host would turn every trial into a bogus boot failure."""
        for p in points(spec):
            reboot = RebootMode(p.get("reboot", spec.reboot))
            host = self.lab.hosts.get(str(p["host"]))
            if reboot is RebootMode.CPU_CYCLE and host is not None and host.is_sim:
                where: PathT = ("axes", "reboot") if "reboot" in self.model.axes \
                    else ("reboot",)
                self.fail(where, f"reboot: cpu-cycle needs real guests; host {p['host']!r} "
                          f"is simulated ({host.uri})")
                break
        self.raise_if_errors()

    def hosts(self, value: Any) -> list[str]:
        path: PathT = ("axes", "host")
        names = list(self.lab.hosts)
        if value == "all":
            return names
        items = value if isinstance(value, list) else [value]
        out: list[str] = []
        for i, item in enumerate(items):
            ipath = (*path, i) if isinstance(value, list) else path
            if isinstance(item, str):
                if item not in self.lab.hosts:
                    self.fail(ipath, f"unknown host {item!r}{did_you_mean(item, names)} "
                              f"(lab {self.lab.file} has: {', '.join(names)})")
                else:
                    out.append(item)
            elif isinstance(item, dict) and set(item) == {"where"} and isinstance(
                    item["where"], dict) and item["where"]:
                where = item["where"]
                for k in where:
                    if k not in self.attr_names:
                        self.fail((*ipath, "where", k), f"no host has attribute {k!r}"
                                  f"{did_you_mean(k, self.attr_names)}", key=True)
                sel = tuple((k, tuple(v) if isinstance(v, list) else (v,))
                            for k, v in where.items())
                from harness.matrix.expand import matches

                chosen = [h for h, spec in self.lab.hosts.items()
                          if matches({}, spec.attributes, sel)]
                if not chosen and all(k in self.attr_names for k in where):
                    self.fail(ipath, f"no host of the lab matches {where}")
                out += [h for h in chosen if h not in out]
            else:
                self.fail(ipath, "a host is a name, 'all', or {where: {attribute: value}}")
        return out

    def guests(self, value: Any) -> list[str]:
        path: PathT = ("axes", "guest")
        names = list(self.lab.guests)
        if value == "all":
            return names
        if not isinstance(value, list):
            value, path_of = [value], (lambda i: path)
        else:
            path_of = lambda i: (*path, i)  # noqa: E731
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(path_of(i), "a guest is a name from the lab file")
            elif item not in self.lab.guests:
                self.fail(path_of(i), f"unknown guest {item!r}{did_you_mean(item, names)} "
                          f"(lab {self.lab.file} has: {', '.join(names)})")
            else:
                out.append(item)
        return out

    def ints(self, path: PathT, value: Any, lo: int, hi: int) -> list[int]:
        items = value if isinstance(value, list) else [value]
        out = []
        for i, v in enumerate(items):
            p = (*path, i) if isinstance(value, list) else path
            if isinstance(v, bool) or not isinstance(v, int):
                self.fail(p, f"{path[-1]}: expected a whole number, got {v!r}")
            elif not lo <= v <= hi:
                self.fail(p, f"{path[-1]}: {v} is out of range {lo}..{hi}")
            else:
                out.append(v)
        return out

    def reboots(self, path: PathT, value: Any) -> list[str]:
        items = value if isinstance(value, list) else [value]
        modes = [m.value for m in RebootMode]
        out = []
        for i, v in enumerate(items):
            p = (*path, i) if isinstance(value, list) else path
            if v not in modes:
                self.fail(p, f"reboot mode {v!r} is not one of {modes}{did_you_mean(v, modes)}")
            else:
                out.append(str(v))
        return out

    def scalars(self, path: PathT, value: Any) -> list[Any]:
        items = value if isinstance(value, list) else [value]
        out = []
        for i, v in enumerate(items):
            p = (*path, i) if isinstance(value, list) else path
            if not isinstance(v, str | int | float | bool):
                self.fail(p, f"axis {path[-1]!r}: values are plain strings or numbers")
            elif isinstance(v, float) and not math.isfinite(v):
                self.fail(p, f"axis {path[-1]!r}: {v} is not a finite number")
            elif len(str(v)) > MAX_VALUE_CHARS or not str(v).strip():
                self.fail(p, f"axis {path[-1]!r}: a value is 1 to {MAX_VALUE_CHARS} "
                          f"characters (part of the cell id), not {len(str(v))}")
            elif isinstance(v, str) and ("\n" in v or "\r" in v):
                self.fail(p, f"axis {path[-1]!r}: a value is one line (part of the cell id)")
            else:
                out.append(v)
        return out

    def placements(self, path: PathT, value: Any) -> list[Any]:
        """Values of a placement axis (``harness.backend.placement``), each checked."""
        items = value if isinstance(value, list) else [value]
        out = []
        for i, v in enumerate(items):
            p = (*path, i) if isinstance(value, list) else path
            if isinstance(v, bool) or not isinstance(v, str | int):
                self.fail(p, f"axis {path[-1]!r}: values are strings such as 'rr:0-3'")
                continue
            try:
                check_value(str(path[-1]), v)
            except PlacementError as exc:
                self.fail(p, str(exc))
                continue
            out.append(v)
        return out

    # -- include / exclude / overrides ------------------------------------------------
    def selector(self, path: PathT, entry: Any, axis_names: list[str]
                 ) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        if not isinstance(entry, dict) or not entry:
            self.fail(path, "expected a mapping of axis or host attribute to value(s)")
            return ()
        allowed = axis_names + self.attr_names
        out = []
        for k, v in entry.items():
            if k not in allowed:
                self.fail((*path, k), f"{k!r} is neither an axis nor a host attribute"
                          f"{did_you_mean(k, allowed)}", key=True)
                continue
            values = tuple(v) if isinstance(v, list) else (v,)
            out.append((k, values))
        return tuple(out)

    def include_point(self, path: PathT, entry: Any, axes: list[Axis]
                      ) -> tuple[tuple[str, Any], ...]:
        if not isinstance(entry, dict):
            self.fail(path, "an include entry is a mapping: {host: ..., guest: ..., vcpus: N}")
            return ()
        names = [a.name for a in axes]
        for k in entry:
            if k not in names:
                self.fail((*path, k), f"{k!r} is not an axis of this matrix"
                          f"{did_you_mean(k, names)}", key=True)
        point: dict[str, Any] = {}
        for axis in axes:
            if axis.name in entry:
                point[axis.name] = entry[axis.name]
            elif axis.name in CORE_AXES:
                self.fail(path, f"include entry misses {axis.name!r}")
                return ()
            else:
                point[axis.name] = axis.values[0]
        if point["host"] not in self.lab.hosts:
            self.fail((*path, "host"), f"unknown host {point['host']!r}"
                      f"{did_you_mean(point['host'], self.lab.hosts)}")
        if point["guest"] not in self.lab.guests:
            self.fail((*path, "guest"), f"unknown guest {point['guest']!r}"
                      f"{did_you_mean(point['guest'], self.lab.guests)}")
        self.ints((*path, "vcpus"), point["vcpus"], 1, 512)
        if "reboot" in point:
            self.reboots((*path, "reboot"), point["reboot"])
        for name in PLACEMENT_AXES:
            if name in entry:
                self.placements((*path, name), entry[name])
        return tuple(point.items())

    def check_expansion(self, spec: MatrixSpec) -> None:
        from harness.matrix.expand import cell_id, matches

        attrs = {h: dict(a) for h, a in spec.host_attrs}
        pts = points(spec)
        if not pts:
            self.fail(("axes",), "the matrix expands to no cells (empty product after "
                      "exclude)")
        seen: dict[str, int] = {}
        too_many: dict[PathT, list[str]] = {}
        product_dup = False
        n_product = len(pts) - len(spec.include)
        for i, p in enumerate(pts):
            cid = cell_id(p, spec.axes)
            if cid in seen:
                j = i - n_product
                if j >= 0:
                    self.fail(("include", j), f"duplicate cell {cid!r}: it is in the matrix "
                              "already")
                elif not product_dup:  # the axes themselves (say it once)
                    product_dup = True
                    self.fail(("axes",), f"duplicate cell {cid!r}: two axis points make the "
                              "same cell id")
            seen[cid] = i
            nodes = p.get("numa_nodes")
            if isinstance(nodes, int) and nodes > int(p["vcpus"]):
                j = i - n_product
                where: PathT = ("include", j, "numa_nodes") if j >= 0 else ("axes",
                                                                             "numa_nodes")
                too_many.setdefault(where, []).append(cid)
        for where, cids in too_many.items():  # once per place, naming the first cell
            more = f" (and {len(cids) - 1} more cells)" if len(cids) > 1 else ""
            self.fail(where, f"cell {cids[0]!r}: numa_nodes is more than its vCPUs{more}; "
                      "each guest NUMA node needs at least one vCPU")
        import itertools

        full = [dict(zip([a.name for a in spec.axes], c, strict=True))
                for c in itertools.product(*(a.values for a in spec.axes))]
        for i, ex in enumerate(spec.exclude):
            if not any(matches(p, attrs.get(p["host"], {}), ex) for p in full):
                self.fail(("exclude", i), "this exclude entry matches no cell")
        for i, ov in enumerate(spec.overrides):
            if not any(matches(p, attrs.get(p["host"], {}), ov.match) for p in pts):
                self.fail(("overrides", i, "match"), "this override matches no cell")
        self.raise_if_errors()
