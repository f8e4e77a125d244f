"""Search spaces: YAML data (``search_spaces/spaces/*.yaml``) turned into Optuna parameters and `ArchSpec`s.

A space has a fixed number of stages; each stage is one block repeated ``depth`` times. Every field
(resolution, stem, each stage, head) is a value or a list of choices; a field with two or more
choices is one categorical Optuna parameter, named (persisted names are API, never rename them):

    resolution
    stem_kernel  stem_stride  stem_width  stem_act
    s<i>_stride  s<i>_type  s<i>_kernel  s<i>_expansion  s<i>_depth  s<i>_width  s<i>_se  s<i>_act
    head_width  head_fc  head_act

with stages numbered from 1. A field with one value is fixed and is not a parameter. There are no
conditional parameters, so every trial of a space suggests the same names. ``build`` turns
parameters into an architecture, ``params_for`` is its inverse for members of the space.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from search_spaces.arch import ArchSpec, Block, Head
from search_spaces.errors import ArchError
from search_spaces.grammar import decode

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

Value = int | float | str
SCHEMA_VERSION = 1

STEM_FIELDS: dict[str, type] = {"kernel": int, "stride": int, "width": int, "act": str}
STAGE_FIELDS: dict[str, type] = {"stride": int, "type": str, "kernel": int, "expansion": float, "depth": int,
                                 "width": int, "se": float, "act": str}
HEAD_FIELDS: dict[str, type] = {"width": int, "fc": int, "act": str}
_NEUTRAL: dict[str, Value] = {
    "resolution": 32, "stem_kernel": 3, "stem_stride": 2, "stem_width": 8, "stem_act": "relu",
    "s1_stride": 1, "s1_type": "ir", "s1_kernel": 3, "s1_expansion": 1.0, "s1_depth": 1, "s1_width": 8, "s1_se": 0.0,
    "s1_act": "relu", "head_width": 0, "head_fc": 0, "head_act": "relu"}
"""A valid one-stage architecture's fields: changing any one field to a bad value is that field's error."""
_TOP_KEYS = ("schema_version", "name", "description", "resolution", "stem", "stage_defaults", "stages", "head",
             "default_small", "references")


@dataclass(frozen=True)
class SearchSpace:
    """A named space of architectures; `fields` maps every field name to its choices, in suggestion order."""

    name: str
    description: str
    fields: tuple[tuple[str, tuple[Value, ...]], ...]
    num_stages: int
    small: str
    """Canonical string of the space's default small candidate (see `default_small`)."""
    references: tuple[str, ...] = ()
    """Reference networks that are members of this space (checked when the space is loaded)."""

    def choices(self) -> dict[str, tuple[Value, ...]]:
        """Every field and its choices (one value for a fixed field), in suggestion order."""
        return dict(self.fields)

    def resolutions(self) -> list[int]:
        """The input resolutions this space lists, in its order."""
        return [int(str(r)) for r in self.choices()["resolution"]]

    def param_names(self) -> tuple[str, ...]:
        """The Optuna parameter names of this space: the fields with more than one choice."""
        return tuple(name for name, values in self.fields if len(values) > 1)

    def size(self) -> int:
        """Number of distinct architectures: every combination of choices gives a different one."""
        return math.prod(len(values) for _, values in self.fields)

    def sample(self, trial: BaseTrial, *, num_classes: int, resolution: int | None = None) -> ArchSpec:
        """Suggest every parameter on `trial` and build the architecture.

        A given `resolution` overrides the choices and no ``resolution`` parameter is suggested.
        """
        params = {name: trial.suggest_categorical(name, list(values))
                  for name, values in self.fields
                  if len(values) > 1 and not (name == "resolution" and resolution is not None)}
        return self.build(params, num_classes=num_classes, resolution=resolution)

    def build(self, params: Mapping[str, Any], *, num_classes: int, resolution: int | None = None) -> ArchSpec:
        """The architecture that `params` (one value per parameter name) selects."""
        expected = set(self.param_names()) - ({"resolution"} if resolution is not None else set())
        for name in params:
            if name not in expected:
                hint = (f"resolution is fixed at {resolution}" if name == "resolution"
                        else f"expected parameters {', '.join(sorted(expected))}")
                raise ArchError(f"unexpected parameter {name!r} for space {self.name!r}: {hint}",
                                value=name, where=f"space {self.name}", expected=hint)
        missing = sorted(expected - set(params))
        if missing:
            raise ArchError(f"missing parameter(s) {', '.join(missing)} for space {self.name!r}",
                            value=", ".join(missing), where=f"space {self.name}", expected="every parameter")
        values = self.choices()

        def get(name: str) -> Any:
            if name == "resolution" and resolution is not None:
                return resolution
            if len(values[name]) == 1:
                return values[name][0]
            value = params[name]
            if isinstance(value, bool) or value not in values[name]:
                raise ArchError(f"parameter {name}={value!r} is not a choice of space {self.name!r}: "
                                f"expected one of {_show(values[name])}", value=str(value), where=name,
                                expected=_show(values[name]))
            return value

        return _assemble(get, self.num_stages, num_classes)

    def params_for(self, arch: ArchSpec, *, resolution: int | None = None) -> dict[str, Value]:
        """The parameters that `build` turns into `arch` (its classes aside), e.g. for `study.enqueue_trial`.

        With a given `resolution` the arch must have it and no ``resolution`` parameter is returned,
        as in `sample`. Raises `ArchError` naming the first field that is not a choice.
        """
        if len(arch.stages) != self.num_stages:
            raise ArchError(f"architecture has {len(arch.stages)} stages; space {self.name!r} has {self.num_stages}",
                            value=str(len(arch.stages)), where="stages", expected=str(self.num_stages))
        found = _fields_of(arch)
        values = self.choices()
        params: dict[str, Value] = {}
        for name, value in found.items():
            if name == "resolution" and resolution is not None:
                if value != resolution:
                    raise ArchError(f"architecture resolution {value} differs from the fixed resolution {resolution}",
                                    value=str(value), where="resolution", expected=str(resolution))
                continue
            match = [choice for choice in values[name] if choice == value and not isinstance(value, bool)]
            if not match:
                raise ArchError(f"{name}={_show((value,))} is not a choice of space {self.name!r}: "
                                f"expected {_show(values[name])}", value=str(value), where=name,
                                expected=_show(values[name]))
            if len(values[name]) > 1:
                params[name] = match[0]
        return params

    def contains(self, arch: ArchSpec, *, resolution: int | None = None) -> bool:
        """Whether some choice of parameters builds exactly `arch` (any number of classes)."""
        try:
            self.params_for(arch, resolution=resolution)
        except ArchError:
            return False
        return True

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (the CLI's ``--json`` output)."""
        return {"schema_version": SCHEMA_VERSION, "name": self.name, "description": self.description,
                "size": self.size(), "stages": self.num_stages, "parameters": list(self.param_names()),
                "choices": {name: list(values) for name, values in self.fields},
                "default_small": self.small, "references": list(self.references)}

    def random_members(self, n: int, *, resolution: int, num_classes: int = 10, seed: int = 0) -> list[ArchSpec]:
        """`n` architectures with every parameter drawn uniformly and independently (what a random sampler
        proposes): how a space looks to a search before it learns anything."""
        import numpy as np

        rng = np.random.default_rng(seed)
        drawn = [(name, values) for name, values in self.fields if len(values) > 1 and name != "resolution"]
        return [self.build({name: values[int(rng.integers(len(values)))] for name, values in drawn},
                           num_classes=num_classes, resolution=resolution) for _ in range(n)]

    def default_small(self, num_classes: int | None = None) -> ArchSpec:
        """A small, quick-to-train member of the space, as named in its YAML under ``default_small``."""
        arch = decode(self.small)
        return arch.with_classes(num_classes) if num_classes else arch


def _fields_of(arch: ArchSpec) -> dict[str, Value]:
    """Every field value of `arch`, keyed by field name; raises when it is not one block per stage."""
    stem = arch.stem
    fields: dict[str, Value] = {"resolution": arch.resolution, "stem_kernel": stem.kernel,
                                "stem_stride": stem.stride, "stem_width": stem.out_channels,
                                "stem_act": stem.activation}
    for i, stage in enumerate(arch.stages, 1):
        if len(stage) != 1:
            raise ArchError(f"stage {i} has {len(stage)} different blocks: a search space makes one block per "
                            "stage, repeated depth times", value=str(len(stage)), where=f"stage {i}",
                            expected="one block")
        block = stage[0]
        if not block.skip:
            raise ArchError(f"stage {i} has noskip: search spaces keep the automatic residual",
                            value="noskip", where=f"stage {i}", expected="no noskip token")
        fields.update({f"s{i}_stride": block.stride, f"s{i}_type": block.type, f"s{i}_kernel": block.kernel,
                       f"s{i}_expansion": block.expansion, f"s{i}_depth": block.repeats,
                       f"s{i}_width": block.out_channels, f"s{i}_se": block.se_ratio,
                       f"s{i}_act": block.activation})
    fields.update({"head_width": arch.head.conv_channels, "head_fc": arch.head.fc_channels,
                   "head_act": arch.head.activation})
    return fields


def _assemble(get: Callable[[str], Any], num_stages: int, num_classes: int) -> ArchSpec:
    stem = Block("cn", get("stem_kernel"), get("stem_stride"), get("stem_width"), get("stem_act"))
    stages = tuple(
        (Block(get(f"s{i}_type"), get(f"s{i}_kernel"), get(f"s{i}_stride"), get(f"s{i}_width"), get(f"s{i}_act"),
               expansion=float(get(f"s{i}_expansion")), se_ratio=float(get(f"s{i}_se")),
               repeats=get(f"s{i}_depth")),)
        for i in range(1, num_stages + 1))
    head = Head(get("head_width"), get("head_fc"), get("head_act"))
    return ArchSpec(get("resolution"), num_classes, stem, stages, head)


def _show(values: tuple[Value, ...]) -> str:
    return ", ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in values)


# --- reading YAML -------------------------------------------------------------------------------------------


def read_space(path: str | Path) -> SearchSpace:
    """Parse and validate one space file; every error names the file and the field."""
    import yaml

    source = str(path)
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ArchError(f"{source}: not valid YAML: {exc}", value=source, where=source, expected="YAML") from exc
    return parse_space(data, source)


def parse_space(data: object, source: str) -> SearchSpace:
    """Build a `SearchSpace` from the mapping of one YAML file, checking every choice and combination."""
    top = _mapping(data, source, "the file", _TOP_KEYS)
    version = _require(top, "schema_version", source, "the file")
    if version != SCHEMA_VERSION:
        raise ArchError(f"{source}: schema_version: {version!r} is not supported: expected {SCHEMA_VERSION}",
                        value=str(version), where=f"{source}: schema_version", expected=str(SCHEMA_VERSION))
    name = _text(_require(top, "name", source, "the file"), source, "name")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ArchError(f"{source}: name: {name!r} is not a lower-case identifier (it is stored in database rows)",
                        value=name, where=f"{source}: name", expected="[a-z][a-z0-9_]*")
    description = _text(_require(top, "description", source, "the file"), source, "description")
    fields: list[tuple[str, tuple[Value, ...]]] = [
        ("resolution", _choices(_require(top, "resolution", source, "the file"), int, source, "resolution"))]
    stem = _mapping(_require(top, "stem", source, "the file"), source, "stem", tuple(STEM_FIELDS))
    fields += _section(stem, STEM_FIELDS, "stem_", source, "stem")
    defaults = _mapping(top.get("stage_defaults", {}), source, "stage_defaults", tuple(STAGE_FIELDS))
    stages = _require(top, "stages", source, "the file")
    if not isinstance(stages, list) or not stages:
        raise ArchError(f"{source}: stages: expected a non-empty list of stage mappings, got {stages!r}",
                        value=str(stages), where=f"{source}: stages", expected="a list of stages")
    for i, raw in enumerate(stages, 1):
        stage = {**defaults, **_mapping(raw, source, f"stage {i}", tuple(STAGE_FIELDS))}
        fields += _section(stage, STAGE_FIELDS, f"s{i}_", source, f"stage {i}")
    head = _mapping(_require(top, "head", source, "the file"), source, "head", tuple(HEAD_FIELDS))
    fields += _section(head, HEAD_FIELDS, "head_", source, "head")
    small = _text(_require(top, "default_small", source, "the file"), source, "default_small")
    references = top.get("references", [])
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise ArchError(f"{source}: references: expected a list of reference names, got {references!r}",
                        value=str(references), where=f"{source}: references", expected="a list of names")
    space = SearchSpace(name, description, tuple(fields), len(stages), small, tuple(references))
    _validate(space, source)
    return space


def _validate(space: SearchSpace, source: str) -> None:
    """Every combination of choices must be a valid architecture, and the named members must be members."""
    from search_spaces.references import reference

    # Each value is tried in a one-stage architecture that is valid whatever the value's field, so an
    # error belongs to that field; then every (type, expansion, se) of a stage, the only coupled fields
    # (cn/ds blocks take no expansion, cn no squeeze-excite). Together they cover every combination.
    checks: list[tuple[str, dict[str, Value]]] = []
    for name, choices in space.fields:
        checks += [(name, {re.sub(r"^s\d+_", "s1_", name): value}) for value in choices]
    for i in range(1, space.num_stages + 1):
        names = (f"s{i}_type", f"s{i}_expansion", f"s{i}_se")
        checks += [("/".join(names), {"s1_type": t, "s1_expansion": e, "s1_se": se})
                   for t, e, se in product(*(space.choices()[name] for name in names))]
    for where, override in checks:
        try:
            _assemble({**_NEUTRAL, **override}.__getitem__, 1, 2)
        except ArchError as exc:
            raise ArchError(f"{source}: {where}: {exc}", value=exc.value, where=f"{source}: {where}",
                            expected=exc.expected) from exc
    try:
        small = space.default_small()
    except ArchError as exc:
        raise ArchError(f"{source}: default_small: {exc}", value=space.small, where=f"{source}: default_small",
                        expected=exc.expected) from exc
    _member(space, small, source, "default_small")
    for name in space.references:
        try:
            arch = reference(name)
        except ArchError as exc:
            raise ArchError(f"{source}: references: {exc}", value=name, where=f"{source}: references",
                            expected=exc.expected) from exc
        _member(space, arch, source, f"references: {name}")


def _member(space: SearchSpace, arch: ArchSpec, source: str, where: str) -> None:
    try:
        space.params_for(arch)
    except ArchError as exc:
        raise ArchError(f"{source}: {where}: not a member of the space: {exc}", value=exc.value,
                        where=f"{source}: {where}", expected=exc.expected) from exc


def _section(raw: Mapping[str, object], kinds: dict[str, type], prefix: str, source: str,
             where: str) -> list[tuple[str, tuple[Value, ...]]]:
    return [(prefix + key, _choices(_require(raw, key, source, where), kind, source, prefix + key))
            for key, kind in kinds.items()]


def _choices(raw: object, kind: type, source: str, field: str) -> tuple[Value, ...]:
    """A scalar (a fixed field) or a non-empty list of distinct values of one kind (int, float or str)."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ArchError(f"{source}: {field}: empty list: expected a value or a list of choices",
                        value="[]", where=f"{source}: {field}", expected="a value or a list of choices")
    out: list[Value] = []
    for item in items:
        if kind is float and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        if isinstance(item, bool) or not isinstance(item, kind):
            raise ArchError(f"{source}: {field}: {item!r} is not {'an' if kind is int else 'a'} {kind.__name__}",
                            value=str(item), where=f"{source}: {field}", expected=kind.__name__)
        if item in out:
            raise ArchError(f"{source}: {field}: duplicate choice {item!r}", value=str(item),
                            where=f"{source}: {field}", expected="distinct choices")
        out.append(cast(Value, item))
    return tuple(out)


def _mapping(raw: object, source: str, where: str, keys: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise ArchError(f"{source}: {where}: expected a mapping, got {raw!r}", value=str(raw),
                        where=f"{source}: {where}", expected="a mapping")
    for key in raw:
        if key not in keys:
            raise ArchError(f"{source}: {where}: unknown key {key!r}: expected {', '.join(keys)}", value=str(key),
                            where=f"{source}: {where}", expected=", ".join(keys))
    return raw


def _require(raw: Mapping[str, object], key: str, source: str, where: str) -> object:
    if key not in raw:
        raise ArchError(f"{source}: {where}: missing key {key!r}", value=key, where=f"{source}: {where}",
                        expected=key)
    return raw[key]


def _text(raw: object, source: str, field: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ArchError(f"{source}: {field}: expected a non-empty string, got {raw!r}", value=str(raw),
                        where=f"{source}: {field}", expected="a string")
    return raw.strip()


# --- registry -----------------------------------------------------------------------------------------------

_REGISTRY: dict[str, SearchSpace] = {}
_LOCK = threading.RLock()
_packaged_loaded = False


def register_space(space: SearchSpace) -> SearchSpace:
    """Check and add a space under its name; a name is registered once (it ends up in database rows)."""
    _validate(space, f"search space {space.name!r}")
    with _LOCK:
        _load_packaged()
        _add(space)
    return space


def space_names() -> list[str]:
    with _LOCK:
        _load_packaged()
        return sorted(_REGISTRY)


def load_space(name: str) -> SearchSpace:
    """The registered space called `name`; `ArchError` naming the known spaces otherwise."""
    with _LOCK:
        _load_packaged()
        if name not in _REGISTRY:
            known = ", ".join(sorted(_REGISTRY))
            raise ArchError(f"unknown search space {name!r}: expected one of {known}", value=name,
                            where="search space", expected=known)
        return _REGISTRY[name]


def _add(space: SearchSpace) -> None:
    if space.name in _REGISTRY:
        raise ArchError(f"search space {space.name!r} is registered twice", value=space.name,
                        where="search space registry", expected="a new name")
    _REGISTRY[space.name] = space


def _load_packaged() -> None:
    """Read the YAML files shipped in the package, once, on first use (not at import)."""
    global _packaged_loaded
    if _packaged_loaded:
        return
    _packaged_loaded = True
    for path in sorted((Path(__file__).parent / "spaces").glob("*.yaml")):
        space = read_space(path)
        if space.name != path.stem:
            raise ArchError(f"{path}: name {space.name!r} differs from the file name: expected {path.stem!r}",
                            value=space.name, where=f"{path}: name", expected=path.stem)
        _add(space)
