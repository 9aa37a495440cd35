"""The align stage and the refine stage, one run at a time, and saved model and ensemble
folders.

Example:
    >>> from orca_automl.config import OrcaConfig
    >>> from orca_automl.cycle import run_cycle, evaluate
    >>> from orca_automl.tasks import load_task
    >>> task = load_task("gunpoint")
    >>> result = run_cycle(task, OrcaConfig(), schedule="short")   # doctest: +SKIP
    >>> evaluate(result.model, task, "test").value                  # doctest: +SKIP
"""

from orca_automl.cycle._align import AlignOutcome, align, target_labels
from orca_automl.cycle._augment import (
    AUGMENTATIONS,
    Augmentation,
    AugmentationInfo,
    Augmenter,
    augmentation_names,
    make_augmenter,
)
from orca_automl.cycle._callback import CycleCallback
from orca_automl.cycle._ensemble import SavedEnsemble, model_parts, save_ensemble
from orca_automl.cycle._model import OrcaModel, build_model
from orca_automl.cycle._refine import RefineOutcome, cpu_has_native_bf16, evaluate_split, refine
from orca_automl.cycle._runner import (
    CycleResult,
    evaluate,
    evaluate_with_predictions,
    inference_gflops,
    pick_device,
    run_cycle,
)
from orca_automl.cycle._saved import SavedModel, load_model, save_model
from orca_automl.evaluation import Evaluation

__all__ = [
    "AUGMENTATIONS",
    "AlignOutcome",
    "Augmentation",
    "AugmentationInfo",
    "Augmenter",
    "CycleCallback",
    "CycleResult",
    "Evaluation",
    "OrcaModel",
    "RefineOutcome",
    "SavedEnsemble",
    "SavedModel",
    "align",
    "augmentation_names",
    "build_model",
    "cpu_has_native_bf16",
    "evaluate",
    "evaluate_split",
    "evaluate_with_predictions",
    "inference_gflops",
    "load_model",
    "make_augmenter",
    "model_parts",
    "pick_device",
    "refine",
    "run_cycle",
    "save_ensemble",
    "save_model",
    "target_labels",
]
