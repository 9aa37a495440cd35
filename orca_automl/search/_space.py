"""A search space: Optuna distributions over `OrcaConfig` keys, with conditions, and how a
trial samples one configuration from it.

A parameter names a dotted config key (`refine.lr`, `model.embedder`, any sub-key of the
`*_args` mappings) and its range; `when` / `unless` conditions keep it only while an earlier
categorical parameter takes (or does not take) given values. `for_task` keeps the embedders and
backbones that fit a task's modality. Spaces are written as YAML files, parsed and validated in
`_space_file`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from orca_automl.config import OrcaConfig
from orca_automl.errors import OrcaInputError

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
    can refuse to resume under a changed space; `content` is that canonical JSON, which a
    study records (in the file's order) so that it can resume with its own space after a
    packaged one changed.

    Example:
        >>> from orca_automl.search import load_space
        >>> space = load_space("cpu-small")                           # doctest: +SKIP
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
    content: str = field(default="", repr=False)

    def for_task(self, modality: str, fits: Callable[[str, str], bool],
                 task_type: str = "classification") -> SearchSpace:
        """Keep the embedders and backbones that fit a task of `modality`, and drop the
        augmentation parameters for dense tasks (which refuse augmentation: moving an input
        would need the same move of its target field).

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
                f"{where}: no backbone of {join_names(backbones)} with an embedder of "
                f"{join_names(embedders)} takes a {modality} task; add an embedder that fits "
                f"(see orca_automl.embedders.compatible_embedders('{modality}'))"
            )
        params = list(self.params)
        if task_type == "dense":
            params = [p for p in params if p.name not in ("refine.augment", "refine.augment_ops")]
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
            value = resolved.get(param.key, get_dotted(defaults, param.key))
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
        return get_dotted(self.base.to_dict(), key)


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


def get_dotted(data: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key of nested mappings (None when absent)."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def join_names(values: Collection[Any]) -> str:
    return ", ".join(str(v) for v in values)
