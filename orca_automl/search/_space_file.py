"""Search space files: finding a space by name or path, and parsing and validating its YAML.

A space file names registry entries and ranges over the dotted keys of `OrcaConfig`:

    description: one line for logs
    base:                       # OrcaConfig values every trial shares
      refine: {eval_every: 20}
    promotion: {top_k: 2, share: 0.3}
    params:
      model.backbone: {choices: [minilm]}
      align.metric:   {choices: [otdd_gaussian, mmd, none]}
      align.steps:    {int: [10, 60], step: 10, unless: {align.metric: none}}
      refine.lr:      {float: [1e-5, 1e-3], log: true}

`when: {KEY: VALUES}` keeps a parameter only while an earlier categorical KEY takes one of
VALUES; `unless` is the opposite (parameters of a parameter that is itself off are off too).
Every choice and both ends of every range are checked against `OrcaConfig` and the
registries when the file is loaded, so a malformed space is refused with the key and the
problem before any trial runs.

Names are looked up in the working directory's `search_spaces/`, then among the spaces that
ship inside the package (`orca_automl.search_spaces`, read through `importlib.resources`, so
an installed wheel has them too).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import math
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from orca_automl.config import OrcaConfig
from orca_automl.errors import OrcaInputError
from orca_automl.inputs import load_yaml, read_text, regular_file
from orca_automl.search._space import (
    Condition,
    Param,
    PromotionSettings,
    SearchSpace,
    get_dotted,
    join_names,
)

#: The package that holds the shipped spaces, and the working directory's own folder of them.
PACKAGED_SPACES = "orca_automl.search_spaces"
LOCAL_SPACES = Path("search_spaces")
_TOP_KEYS = ("description", "base", "promotion", "params")
_SPEC_KEYS = ("choices", "int", "float", "step", "log", "when", "unless")


def load_space(
    name_or_path: str, known_names: Mapping[str, Collection[str]] | None = None
) -> SearchSpace:
    """Read and validate a space by name (see `resolve_space`) or path.

    known_names maps config keys naming registry entries ("model.backbone", ...) to the
    registered names; choices outside them are refused.
    """
    path = resolve_space(name_or_path)
    data = load_yaml(read_text(path, "search space", "give a UTF-8 YAML file"),
                     f"search space {path}")
    return parse_space(data, name=path.stem, path=path, known_names=known_names or {})


def parse_space(
    data: Any, *, name: str, path: Path, known_names: Mapping[str, Collection[str]]
) -> SearchSpace:
    """A validated space from a file's parsed YAML."""
    where = f"search space {name}"
    if not isinstance(data, dict) or "params" not in data:
        raise OrcaInputError(f"{where}: the file must be a mapping with a 'params' section")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise OrcaInputError(
            f"{where}: unknown section {unknown[0]!r}; the sections are {', '.join(_TOP_KEYS)}"
        )
    try:
        base = OrcaConfig.from_dict(data.get("base") or {})
    except OrcaInputError as exc:
        raise OrcaInputError(f"{where}: base: {exc}") from None
    promotion_data = data.get("promotion") or {}
    if not isinstance(promotion_data, dict) or set(promotion_data) - {"top_k", "share"}:
        raise OrcaInputError(f"{where}: promotion must be a mapping with top_k and/or share")
    try:
        promotion = PromotionSettings(**promotion_data)
    except OrcaInputError as exc:
        raise OrcaInputError(f"{where}: {exc}") from None
    raw_params = data["params"]
    if not isinstance(raw_params, dict) or not raw_params:
        raise OrcaInputError(f"{where}: params must map config keys to ranges, e.g. "
                             "refine.lr: {float: [1e-5, 1e-3], log: true}")
    params: list[Param] = []
    for key, spec in raw_params.items():
        params.append(_parse_param(where, str(key), spec, params, base, known_names))
    for key in known_names:
        if key not in raw_params:
            _check_names(where, key, [get_dotted(base.to_dict(), key)], known_names)
    canonical = json.dumps(data, sort_keys=True, default=str)  # the hash ignores key order,
    content = json.dumps(data, default=str)  # the parameters' order matters (conditions)
    return SearchSpace(
        name=name,
        path=path,
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        description=str(data.get("description") or ""),
        base=base,
        params=tuple(params),
        promotion=promotion,
        content=content,
    )


def is_packaged(path: Path) -> bool:
    """Whether `path` is one of the spaces shipped inside the package (which an upgrade may
    change, unlike a user's own file)."""
    return path.resolve().parent == _packaged_folder().resolve()


def resolve_space(name_or_path: str) -> Path:
    """A space file from a path, or from a name: ./search_spaces/NAME.yaml, else the one
    shipped inside the package."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or len(candidate.parts) > 1:
        return regular_file(candidate, "search space file", "give a YAML file")
    for folder in _space_folders():
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    raise OrcaInputError(
        f"unknown search space {name_or_path!r}: use one of "
        f"{', '.join(available_spaces()) or '(none found)'} or a path to a YAML file"
    )


def available_spaces() -> list[str]:
    """The space names `resolve_space` knows: the working directory's and the packaged ones."""
    return sorted({p.stem for folder in _space_folders() for p in folder.glob("*.yaml")})


def _space_folders() -> list[Path]:
    """Where names are looked up, in order. The packaged spaces are a folder of plain files
    in every installed form (wheel or editable)."""
    return [folder for folder in (LOCAL_SPACES, _packaged_folder()) if folder.is_dir()]


def _packaged_folder() -> Path:
    return Path(str(importlib.resources.files(PACKAGED_SPACES)))


def _parse_param(
    where: str,
    key: str,
    spec: Any,
    earlier: list[Param],
    base: OrcaConfig,
    known_names: Mapping[str, Collection[str]],
) -> Param:
    here = f"{where}: params.{key}"
    if not isinstance(spec, dict):
        raise OrcaInputError(f"{here}: give a mapping such as {{choices: [...]}}, "
                             "{int: [low, high]} or {float: [low, high], log: true}")
    unknown = sorted(set(spec) - set(_SPEC_KEYS))
    if unknown:
        raise OrcaInputError(f"{here}: unknown field {unknown[0]!r}; use {', '.join(_SPEC_KEYS)}")
    kinds = [k for k in ("choices", "int", "float") if k in spec]
    if len(kinds) != 1:
        raise OrcaInputError(f"{here}: give exactly one of choices, int or float")
    if any(p.key == key for p in earlier):
        raise OrcaInputError(f"{here}: the key appears twice")
    if key == "model.backbone" and any(p.key == "model.embedder" for p in earlier):
        raise OrcaInputError(f"{here}: declare it above model.embedder (which embedders fit "
                             "depends on the backbone)")
    distribution = _distribution(here, kinds[0], spec)
    if key in known_names and not isinstance(distribution, CategoricalDistribution):
        raise OrcaInputError(f"{here}: registry names are searched with choices: [...]")
    if isinstance(distribution, CategoricalDistribution):
        probes: list[Any] = list(distribution.choices)
    else:
        assert isinstance(distribution, (IntDistribution, FloatDistribution))
        probes = [distribution.low, distribution.high]
    for value in probes:
        try:
            base.with_overrides({key: value})
        except OrcaInputError as exc:
            raise OrcaInputError(f"{here}: value {value!r} is refused: {exc}") from None
    _check_names(here, key, probes, known_names)
    conditions = [
        *_conditions(here, spec.get("when"), earlier, negate=False, field_name="when"),
        *_conditions(here, spec.get("unless"), earlier, negate=True, field_name="unless"),
    ]
    return Param(name=key, key=key, distribution=distribution, conditions=tuple(conditions))


def _distribution(here: str, kind: str, spec: dict[str, Any]) -> BaseDistribution:
    if kind == "choices":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise OrcaInputError(f"{here}: choices must be a non-empty list")
        if any(not isinstance(c, (str, int, float, bool, type(None))) for c in choices):
            raise OrcaInputError(f"{here}: choices must be plain values (text, numbers, true/false)")
        if len(set(map(repr, choices))) != len(choices):
            raise OrcaInputError(f"{here}: choices repeat a value")
        if set(spec) - {"choices", "when", "unless"}:
            raise OrcaInputError(f"{here}: step and log apply to int and float ranges only")
        return CategoricalDistribution(choices)
    bounds = spec[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise OrcaInputError(f"{here}: {kind} must be [low, high]")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise OrcaInputError(f"{here}: log must be true or false")
    step = spec.get("step")
    if kind == "int":
        if any(isinstance(b, bool) or not isinstance(b, int) for b in bounds):
            raise OrcaInputError(f"{here}: int bounds must be whole numbers, got {bounds}")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
            raise OrcaInputError(f"{here}: step must be a whole number >= 1")
        low, high = bounds
        if log and low < 1:
            raise OrcaInputError(f"{here}: a log range needs low >= 1")
        checked_step: int | float | None = step
    else:
        low, high = (_number(here, b) for b in bounds)
        if log and low <= 0:
            raise OrcaInputError(f"{here}: a log range needs low > 0")
        checked_step = None if step is None else _number(here, step)
        if checked_step is not None and checked_step <= 0:
            raise OrcaInputError(f"{here}: step must be > 0")
    if low > high:
        raise OrcaInputError(f"{here}: low {low} is above high {high}")
    if log and checked_step not in (None, 1):
        raise OrcaInputError(f"{here}: log and step cannot be combined")
    try:
        if kind == "int":
            return IntDistribution(int(low), int(high), log=log, step=int(checked_step or 1))
        return FloatDistribution(float(low), float(high), log=log, step=checked_step)
    except ValueError as exc:
        raise OrcaInputError(f"{here}: {exc}") from None


def _number(here: str, value: Any) -> float:
    """A finite number; YAML reads 1e-3 (no dot) as text, so text numbers are accepted."""
    if isinstance(value, bool):
        raise OrcaInputError(f"{here}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OrcaInputError(f"{here}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise OrcaInputError(f"{here}: {value!r} is not a finite number")
    return number


def _conditions(
    here: str, spec: Any, earlier: list[Param], *, negate: bool, field_name: str
) -> list[Condition]:
    if spec is None:
        return []
    if not isinstance(spec, dict) or not spec:
        raise OrcaInputError(f"{here}: {field_name} must map an earlier key to its values, "
                             "e.g. {align.metric: none}")
    out = []
    for parent_key, raw in spec.items():
        parent = next((p for p in earlier if p.key == parent_key), None)
        if parent is None:
            raise OrcaInputError(
                f"{here}: {field_name} refers to {parent_key!r}, which is not a parameter "
                "declared above it"
            )
        if not isinstance(parent.distribution, CategoricalDistribution):
            raise OrcaInputError(f"{here}: {field_name} refers to {parent_key!r}, which is not a "
                                 "choices parameter")
        values = tuple(raw) if isinstance(raw, list) else (raw,)
        missing = [v for v in values if v not in parent.distribution.choices]
        if missing:
            raise OrcaInputError(
                f"{here}: {field_name} value {missing[0]!r} is not among the choices of "
                f"{parent_key} ({join_names(parent.distribution.choices)})"
            )
        out.append(Condition(str(parent_key), values, negate))
    return out


def _check_names(
    here: str, key: str, values: list[Any], known_names: Mapping[str, Collection[str]]
) -> None:
    names = known_names.get(key)
    if names is None:
        return
    for value in values:
        if value != "auto" and value not in names:
            raise OrcaInputError(
                f"{here}: unknown {key.split('.')[-1]} {value!r}: choose among {join_names(sorted(names))}"
            )
