"""Search spaces: a YAML file -> Optuna distributions over OrcaConfig keys, with conditions.

A space names registry entries and ranges over the dotted keys of `OrcaConfig`
(`refine.lr`, `model.embedder`, `align.metric`, any sub-key of the `*_args` mappings):

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
problem before any trial runs. `for_task` then keeps only the embedders (and backbones) that
fit the task's modality.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from orca_automl.config import OrcaConfig
from orca_automl.errors import OrcaInputError

#: Where space names are looked up: the working directory's, then the project's own.
SPACE_DIRS: tuple[Path, ...] = (
    Path("search_spaces"),
    Path(__file__).resolve().parents[2] / "search_spaces",
)
_TOP_KEYS = ("description", "base", "promotion", "params")
_SPEC_KEYS = ("choices", "int", "float", "step", "log", "when", "unless")
_INACTIVE = object()


@dataclass(frozen=True)
class Condition:
    """`key` (a config key) must (negate=False) or must not (negate=True) be one of `values`."""

    key: str
    values: tuple[CategoricalChoiceType, ...]
    negate: bool = False

    def holds(self, value: object) -> bool:
        if value is _INACTIVE:
            return False
        return (value in self.values) != self.negate


@dataclass(frozen=True)
class Param:
    """One searched parameter: Optuna's name for it, the config key it sets, its range."""

    name: str
    key: str
    distribution: BaseDistribution
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class PromotionSettings:
    """How many short-schedule winners get full training, and the budget share kept for it."""

    top_k: int = 2
    share: float = 0.3

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise OrcaInputError(f"promotion.top_k must be a whole number >= 1, got {self.top_k!r}")
        if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not (
            0.0 <= self.share < 1.0
        ):
            raise OrcaInputError(f"promotion.share must be a fraction in [0, 1), got {self.share!r}")


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    sha256 is taken over the parsed content (comments and layout do not count), so a study
    can refuse to resume under a changed space.

    Example:
        >>> space = SearchSpace.load("cpu-small")                     # doctest: +SKIP
        >>> study = optuna.create_study(directions=["maximize", "minimize"])
        >>> overrides = space.sample(study.ask())                     # doctest: +SKIP
        >>> config = space.config(overrides, seed=0)                  # doctest: +SKIP
    """

    name: str
    path: Path
    sha256: str
    description: str
    base: OrcaConfig
    params: tuple[Param, ...]
    promotion: PromotionSettings

    @classmethod
    def load(
        cls, name_or_path: str, known_names: Mapping[str, Collection[str]] | None = None
    ) -> SearchSpace:
        """Read and validate a space by name (search_spaces/NAME.yaml) or path.

        known_names maps config keys naming registry entries ("model.backbone", ...) to the
        registered names; choices outside them are refused.
        """
        path = resolve_space(name_or_path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise OrcaInputError(f"search space {path} is not valid YAML{where}: fix its syntax") from None
        return cls.from_dict(data, name=path.stem, path=path, known_names=known_names or {})

    @classmethod
    def from_dict(
        cls, data: Any, *, name: str, path: Path, known_names: Mapping[str, Collection[str]]
    ) -> SearchSpace:
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
                _check_names(where, key, [_get(base.to_dict(), key)], known_names)
        content = json.dumps(data, sort_keys=True, default=str).encode()
        return cls(
            name=name,
            path=path,
            sha256=hashlib.sha256(content).hexdigest(),
            description=str(data.get("description") or ""),
            base=base,
            params=tuple(params),
            promotion=promotion,
        )

    def for_task(self, modality: str, fits: Callable[[str, str], bool]) -> SearchSpace:
        """Keep the embedders and backbones that fit a task of `modality`.

        fits(backbone, embedder) says whether that pair takes this modality. When the fitting
        embedders differ per backbone, the embedder becomes one conditional parameter per
        backbone (`model.embedder[minilm]`), so each Optuna distribution stays fixed.
        """
        where = f"search space {self.name}"
        backbone = self._param("model.backbone")
        embedder = self._param("model.embedder")
        backbones = _choices(backbone) if backbone else [self.base.model.backbone]
        embedders = _choices(embedder) if embedder else [self.base.model.embedder]
        allowed = {b: [e for e in embedders if fits(str(b), str(e))] for b in backbones}
        kept = [b for b in backbones if allowed[b]]
        if not kept:
            raise OrcaInputError(
                f"{where}: no backbone of {_names(backbones)} with an embedder of "
                f"{_names(embedders)} takes a {modality} task; add an embedder that fits "
                f"(see orca_automl.embedders.compatible_embedders('{modality}'))"
            )
        params = list(self.params)
        if backbone is not None:
            index = params.index(backbone)
            params[index] = dataclasses.replace(backbone, distribution=CategoricalDistribution(kept))
        if embedder is not None:
            index = params.index(embedder)
            variants = {tuple(allowed[b]) for b in kept}
            if len(variants) == 1:
                params[index] = dataclasses.replace(
                    embedder, distribution=CategoricalDistribution(list(variants.pop()))
                )
            else:
                params[index:index + 1] = [
                    dataclasses.replace(
                        embedder,
                        name=f"model.embedder[{b}]",
                        distribution=CategoricalDistribution(allowed[b]),
                        conditions=(*embedder.conditions, Condition("model.backbone", (b,))),
                    )
                    for b in kept
                ]
        return dataclasses.replace(self, params=tuple(params))

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every active parameter on `trial`; returns {config key: value}."""
        chosen: dict[str, Any] = {}
        for param in self.params:
            if all(c.holds(self._value(c.key, chosen)) for c in param.conditions):
                chosen[param.key] = _suggest(trial, param.name, param.distribution)
        return chosen

    def engine_defaults(self, resolved: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna params of the engine's own defaults (`OrcaConfig()`), where the space holds them.

        A fresh study runs this point first, so a search starts from what `orca-train` does
        without one: short trials on tiny validation sets are noisy, and a search that never
        tries the default can end below it. `resolved` gives what "auto" means for the task
        (backbone, embedder). Parameters whose default lies outside the space are left to the
        sampler.
        """
        defaults = OrcaConfig().to_dict()
        params: dict[str, Any] = {}
        for param in self.params:
            value = resolved.get(param.key, _get(defaults, param.key))
            if value is not None and _holds(param.distribution, value):
                params[param.name] = value
        return params

    def config(self, overrides: Mapping[str, Any], seed: int) -> OrcaConfig:
        """The full run configuration of one trial."""
        return self.base.with_overrides({**overrides, "seed": seed})

    def _param(self, key: str) -> Param | None:
        return next((p for p in self.params if p.key == key), None)

    def _value(self, key: str, chosen: Mapping[str, Any]) -> object:
        if key in chosen:
            return chosen[key]
        if any(p.key == key for p in self.params):
            return _INACTIVE
        return _get(self.base.to_dict(), key)


def resolve_space(name_or_path: str) -> Path:
    """A space file from a path, or from a name looked up in SPACE_DIRS."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or len(candidate.parts) > 1:
        if candidate.is_file():
            return candidate
        raise OrcaInputError(f"search space file {candidate} does not exist: give a YAML file")
    for folder in SPACE_DIRS:
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for folder in SPACE_DIRS if folder.is_dir() for p in folder.glob("*.yaml")})
    raise OrcaInputError(
        f"unknown search space {name_or_path!r}: use one of {', '.join(known) or '(none found)'} "
        "or a path to a YAML file"
    )


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
                f"{parent_key} ({_names(parent.distribution.choices)})"
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
                f"{here}: unknown {key.split('.')[-1]} {value!r}: choose among {_names(sorted(names))}"
            )


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, FloatDistribution)
    return trial.suggest_float(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def _choices(param: Param) -> list[CategoricalChoiceType]:
    assert isinstance(param.distribution, CategoricalDistribution)
    return list(param.distribution.choices)


def _holds(distribution: BaseDistribution, value: Any) -> bool:
    """Whether `value` is a point of `distribution` (a choice, or in range and on the step)."""
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    if not distribution.low <= value <= distribution.high:
        return False
    if isinstance(distribution, IntDistribution):
        return float(value).is_integer() and (int(value) - distribution.low) % distribution.step == 0
    step = distribution.step
    return step is None or math.isclose((value - distribution.low) / step,
                                        round((value - distribution.low) / step))


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _names(values: Collection[Any]) -> str:
    return ", ".join(str(v) for v in values)
