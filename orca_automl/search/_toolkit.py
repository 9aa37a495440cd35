"""What the search needs from the rest of the package, in one place so tests can swap it: tasks,
the registries' names and metadata, the GPU check and the trial runner.

Everything here reads the registries' metadata; nothing loads weights, so the driver can
validate a search space in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_automl.search._runner import CycleRunner, TrialRunner


@dataclass(frozen=True)
class Toolkit:
    """load_task(spec, seed) -> Task; known_names: config key -> registered names (for space
    validation); embedder_fits(modality) -> fits(backbone, embedder); gpu_visible() for GPU
    budgets; runner runs the trials; save_ensemble(parts, folder, scores) saves weighted
    model folders (a bag of fold models, or winners that are themselves ensembles) as one
    ensemble folder that `orca-predict` serves;
    baselines(task) names the reference methods scored beside the trials,
    fit_baseline(name, task, seed) fits one (its .val and .test predictions, .fit_seconds),
    and save_baseline(fitted, task, seed, folder) saves it as a model folder."""

    load_task: Callable[[str, int], Any]
    known_names: Callable[[], Mapping[str, Collection[str]]]
    embedder_fits: Callable[[str], Callable[[str, str], bool]]
    gpu_visible: Callable[[], bool]
    runner: TrialRunner
    save_ensemble: Callable[[Sequence[tuple[Path, float]], Path, dict[str, Any]], Path]
    baselines: Callable[[Any], list[str]]
    fit_baseline: Callable[[str, Any, int], Any]
    save_baseline: Callable[[Any, Any, int, Path], Path]


def cycle_toolkit() -> Toolkit:
    """The real toolkit: built-in tasks and files, the registries, and `CycleRunner`."""

    def load(spec: str, seed: int) -> Any:
        from orca_automl.tasks import load_task

        return load_task(spec, seed=seed)

    def gpu_visible() -> bool:
        import torch

        return bool(torch.cuda.is_available())

    def baselines(task: Any) -> list[str]:
        from orca_automl.baselines import field_baselines

        return field_baselines(task)

    def fit(name: str, task: Any, seed: int) -> Any:
        from orca_automl.baselines import fit_baseline

        return fit_baseline(name, task, seed)

    def save(fitted: Any, task: Any, seed: int, folder: Path) -> Path:
        from orca_automl.baselines import save_baseline

        return save_baseline(fitted, task, seed, folder)

    return Toolkit(load, registered_names, registry_fits, gpu_visible, CycleRunner(),
                   save_flat_ensemble, baselines, fit, save)


def save_flat_ensemble(
    parts: Sequence[tuple[Path, float]], folder: Path, scores: dict[str, Any]
) -> Path:
    """Weighted saved folders as one flat ensemble folder: an ensemble among them contributes
    its members, each at its weight times the ensemble's."""
    from orca_automl.cycle import model_parts, save_ensemble

    flat = [(member, weight * inner) for path, weight in parts
            for member, inner in model_parts(path)]
    return save_ensemble([m for m, _ in flat], folder, [w for _, w in flat], scores=scores,
                         notes=[f"an ensemble of {len(parts)} saved model folders"])


def registered_names() -> dict[str, list[str]]:
    """The names a search space may choose from, per config key."""
    from orca_automl.alignment import ALIGNMENT_METRICS
    from orca_automl.backbones import BACKBONES
    from orca_automl.embedders import EMBEDDERS

    return {
        "model.backbone": BACKBONES.names(),
        "model.embedder": EMBEDDERS.names(),
        "align.metric": ALIGNMENT_METRICS.names(),
    }


def registry_fits(modality: str) -> Callable[[str, str], bool]:
    """fits(backbone, embedder): whether that pair takes a task of `modality`, from the
    registries' metadata ("auto" as the engine resolves it)."""
    from orca_automl.backbones import BACKBONES, backbone_kind, default_backbone
    from orca_automl.embedders import compatible_embedders, default_embedder

    def fits(backbone: str, embedder: str) -> bool:
        name = (default_backbone(modality) or "") if backbone == "auto" else backbone
        if name not in BACKBONES:
            return False
        kind = backbone_kind(name)
        if embedder == "auto":
            return default_embedder(modality, kind) is not None
        return embedder in compatible_embedders(modality, kind)

    return fits


def engine_choices(modality: str) -> dict[str, Any]:
    """What "auto" and empty embedder_args mean for a task of `modality`: the default backbone,
    its default embedder, and that embedder's own argument defaults (e.g. target_seq_len 64)."""
    from orca_automl.backbones import backbone_kind, default_backbone
    from orca_automl.embedders import default_embedder, embedder_defaults

    backbone = default_backbone(modality)
    if backbone is None:
        return {}
    embedder = default_embedder(modality, backbone_kind(backbone))
    if embedder is None:
        return {"model.backbone": backbone}
    args = {f"model.embedder_args.{k}": v for k, v in embedder_defaults(embedder).items()}
    return {"model.backbone": backbone, "model.embedder": embedder, **args}
