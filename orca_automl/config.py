"""One run's configuration: which model to build and how to align and refine it.

The same dataclasses serve `orca-train --config FILE.yaml`, the search (each trial samples
one) and saved model folders (config.yaml). `from_dict` refuses unknown keys and wrong types
with one line naming the key, so a typo in a YAML file never silently falls back to a default.
Schedules are sized in optimizer STEPS, not epochs: tiny tasks get too few updates otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from orca_automl.errors import OrcaInputError
from orca_automl.inputs import check_seed, load_yaml, read_text

SCOPES = ("full", "top", "norms", "frozen", "lora")


class Stage(StrEnum):
    """Which schedule a run uses: the search's SHORT screening run (every step count scaled by
    `OrcaConfig.short_fraction`) or FULL training. BASELINE and ENSEMBLE are no schedules:
    they mark what a study records beside its trials (reference methods, and ensembles of its
    fully trained configurations)."""

    SHORT = "short"
    FULL = "full"
    BASELINE = "baseline"
    ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class ModelConfig:
    """The network: embedder -> pretrained body -> head.

    backbone: a registry name ("minilm", "efficientnet_lite0", "hf", "timm", ...).
    backbone_args: e.g. {"name_or_path": "roberta-base"} for "hf", {"name": "vit_tiny_patch16_224",
        "checkpoint": "w.pth"} for "timm", {"reference": "my_ref.npz"} for own reference data.
    pretrained: False builds the same architecture from random weights (an honest control).
    embedder: a registry name or "auto" (the default for the task's modality).
    head: "auto" (pool + linear; the dense head that fits the backbone for dense tasks) or a
        registry name.
    """

    backbone: str = "auto"
    backbone_args: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = True
    embedder: str = "auto"
    embedder_args: dict[str, Any] = field(default_factory=dict)
    head: str = "auto"
    head_dropout: float = 0.0


@dataclass(frozen=True)
class AlignConfig:
    """Stage 2: train only the embedder to bring target features near the reference ones.

    The default is gentle (lr = 10 x the body's refine lr, ORCA's rule; 20 steps): strong
    alignment hurt tiny tasks (docs/benchmarks/findings.md); the search explores stronger
    settings and "none".
    """

    metric: str = "otdd_gaussian"
    metric_args: dict[str, Any] = field(default_factory=dict)
    steps: int = 20
    lr: float = 1e-3
    batch_size: int = 128
    source_samples: int = 2000
    label_weight: float = 0.0

    def __post_init__(self) -> None:
        _check_positive(self, "steps", allow_zero=True)
        _check_positive(self, "lr")
        _check_positive(self, "batch_size")
        _check_positive(self, "source_samples")
        _check_positive(self, "label_weight", allow_zero=True)


@dataclass(frozen=True)
class RefineConfig:
    """Stage 3: train every weight on the task loss.

    lr is the pretrained body's learning rate; new_lr the embedder's and head's (new parts
    need a larger one). warmup is a fraction of steps; decay "constant", "linear" or
    "cosine" after it. select: "best" (checkpoint with the best validation score, loss as
    tie-breaker), "final", or "auto" (best when the validation set has >= min_val_for_best
    samples, else final: selecting on a handful of samples is noise). precision: "auto" (bf16
    autocast on CUDA, float32 elsewhere), "fp32", or "bf16" (bf16 autocast on any device; on
    a CPU only worth it with native bf16 (avx512_bf16, AMX): 1.1x faster per trial there,
    emulated and 15x slower without, which the run's notes say; see
    docs/benchmarks/ablation_options.md).

    scope: which body weights learn. "full" (every one, ORCA), "top" (the top `top_blocks`
    blocks plus every norm layer), "norms" (norm layers and biases only), "frozen" (none:
    only embedder and head learn), "lora" (low-rank adapters of rank `lora_rank` and scale
    `lora_alpha / lora_rank` on the body's linear layers through `peft`; the base weights
    stay untouched and a saved model keeps only the adapters). layer_decay < 1 gives the body
    block k below the top the rate lr * layer_decay**k.
    augment: augmentation strength in [0, 1] (0: off), with the modality's transforms
    (`augment_ops` "auto") or a "+"-joined list of them (`cycle.AUGMENTATIONS`).
    bridge: PaRe-style modality bridging, the initial share of embedded target tokens that
    a learned gate replaces by reference-modality tokens, annealed linearly to zero at the
    fraction `bridge_until` of the steps (0: off).
    """

    steps: int = 400
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 1e-4
    new_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.1
    decay: str = "linear"
    clip: float = 1.0
    eval_every: int = 50
    select: str = "auto"
    min_val_for_best: int = 50
    label_smoothing: float = 0.0
    precision: str = "auto"
    scope: str = "full"
    top_blocks: int = 2
    lora_rank: int = 8
    lora_alpha: int = 16
    layer_decay: float = 1.0
    augment: float = 0.0
    augment_ops: str = "auto"
    bridge: float = 0.0
    bridge_until: float = 0.5

    def __post_init__(self) -> None:
        _check_positive(self, "steps")
        _check_positive(self, "batch_size")
        _check_positive(self, "lr")
        _check_positive(self, "new_lr")
        _check_positive(self, "eval_every")
        _check_choice(self, "optimizer", ("adamw", "adam", "sgd"))
        _check_choice(self, "decay", ("constant", "linear", "cosine"))
        _check_choice(self, "select", ("auto", "best", "final"))
        _check_choice(self, "precision", ("auto", "fp32", "bf16"))
        _check_choice(self, "scope", SCOPES)
        _check_positive(self, "top_blocks")
        _check_positive(self, "lora_rank")
        _check_positive(self, "lora_alpha")
        _check_fraction(self, "layer_decay", low_open=True, high_open=False)
        _check_fraction(self, "augment", low_open=False, high_open=False)
        _check_fraction(self, "bridge", low_open=False, high_open=True)
        _check_fraction(self, "bridge_until", low_open=True, high_open=False)
        if not 0.0 <= self.warmup < 1.0:
            raise OrcaInputError(f"refine.warmup must be a fraction in [0, 1), got {self.warmup}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise OrcaInputError(
                f"refine.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )


@dataclass(frozen=True)
class OrcaConfig:
    """Everything one align-then-refine run needs besides the task.

    short_fraction scales both stages' steps for the search's SHORT schedule.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    seed: int = 0
    short_fraction: float = 0.25

    def __post_init__(self) -> None:
        check_seed(self.seed, "seed")
        if not 0.0 < self.short_fraction <= 1.0:
            raise OrcaInputError(
                f"short_fraction must be in (0, 1], got {self.short_fraction}"
            )

    def schedule(self, stage: Stage | str) -> OrcaConfig:
        """The config with the step counts of `stage`'s schedule."""
        if stage not in (Stage.SHORT, Stage.FULL):
            raise OrcaInputError(f"unknown schedule {stage!r}: use 'short' or 'full'")
        if stage == Stage.FULL:
            return self
        f = self.short_fraction
        align = dataclasses.replace(self.align, steps=int(round(self.align.steps * f)))
        refine = dataclasses.replace(
            self.refine,
            steps=max(1, int(round(self.refine.steps * f))),
            eval_every=max(1, int(round(self.refine.eval_every * f))),
        )
        return dataclasses.replace(self, align=align, refine=refine)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> OrcaConfig:
        """Build from nested dicts, refusing unknown keys and wrong types."""
        return _build(cls, _upgrade(data or {}), prefix="")

    @classmethod
    def from_yaml(cls, path: str | Path) -> OrcaConfig:
        path = Path(path)
        data = load_yaml(read_text(path, "config file", "give a YAML file path"),
                         f"config file {path}")
        if data is not None and not isinstance(data, dict):
            raise OrcaInputError(f"config file {path} must hold a mapping of sections")
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def with_overrides(self, overrides: dict[str, Any]) -> OrcaConfig:
        """A copy with dotted keys replaced, e.g. {"refine.lr": 3e-4, "model.embedder": "conv1d"}."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                if not isinstance(node.get(key), dict):
                    raise OrcaInputError(f"unknown config key {dotted!r}")
                node = node[key]
            node[leaf] = value
        return OrcaConfig.from_dict(data)


def _upgrade(data: Any) -> Any:
    """Older configs (and saved model folders) wrote `refine.train_body`; `refine.scope`
    replaced it: true is "full", false "frozen"."""
    refine = data.get("refine") if isinstance(data, dict) else None
    if not isinstance(refine, dict) or "train_body" not in refine:
        return data
    refine = dict(refine)
    train_body = refine.pop("train_body")
    if not isinstance(train_body, bool):
        raise OrcaInputError(f"config key 'refine.train_body' must be true or false, got {train_body!r}")
    refine.setdefault("scope", "full" if train_body else "frozen")
    return {**data, "refine": refine}


def _check_fraction(obj: object, name: str, low_open: bool, high_open: bool) -> None:
    value = getattr(obj, name)
    if not math.isfinite(value) or (value <= 0 if low_open else value < 0) or (value >= 1 if high_open else value > 1):
        bounds = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise OrcaInputError(f"{type(obj).__name__}.{name} must be in {bounds}, got {value}")


def _check_positive(obj: object, name: str, allow_zero: bool = False) -> None:
    value = getattr(obj, name)
    if not math.isfinite(value):
        raise OrcaInputError(f"{type(obj).__name__}.{name} must be a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise OrcaInputError(f"{type(obj).__name__}.{name} must be {bound}, got {value}")


def _check_choice(obj: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(obj, name)
    if value not in choices:
        raise OrcaInputError(
            f"{type(obj).__name__}.{name} must be one of {', '.join(choices)}, got {value!r}"
        )


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise OrcaInputError(f"config key {prefix.rstrip('.') or '<root>'!r} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise OrcaInputError(
            f"unknown config key {prefix + unknown[0]!r}: known keys are {', '.join(sorted(names))}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, prefix + name)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    origin = typing.get_origin(hint)
    if origin is dict:
        if not isinstance(value, dict):
            raise OrcaInputError(f"config key {key!r} must be a mapping, got {value!r}")
        if not all(isinstance(k, str) for k in value):
            raise OrcaInputError(f"config key {key!r} must map names to values, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise OrcaInputError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise OrcaInputError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads "1e-3" as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OrcaInputError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise OrcaInputError(f"config key {key!r} must be a string, got {value!r}")
        return value
    return value
