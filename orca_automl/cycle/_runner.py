"""One align-then-refine run: build, align, refine, measure. The search calls this per trial."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from orca_automl.config import OrcaConfig, Stage
from orca_automl.cycle._align import AlignOutcome, align
from orca_automl.cycle._augment import make_augmenter
from orca_automl.cycle._callback import CycleCallback
from orca_automl.cycle._model import OrcaModel, build_model
from orca_automl.cycle._refine import evaluate_outputs, precision_note, predict, refine
from orca_automl.evaluation import Evaluation
from orca_automl.tasks import Task


@dataclass
class CycleResult:
    """What one run produced.

    val is the validation evaluation (its score is what the search maximises: the metric,
    negated when lower is better; all NaN when the run stopped after alignment), and
    val_predictions the model's predictions for the validation split in the one form of
    `tasks.to_predictions` (None when it stopped after alignment); cost is the
    model's inference cost in GFLOPs per sample (deterministic, unlike latency);
    device_seconds is the run's measured compute time (wall time on its device), of which
    step_seconds went to the align and refine optimisation steps (what grows with the
    schedule's step counts; building the model, the alignment's reference and the
    evaluations, as many at either schedule, do not);
    stopped is None, "align" (stopped by the callback after alignment) or "refine".
    """

    val: Evaluation
    align_curve: list[float]
    initial_align_loss: float | None
    final_align_loss: float | None
    device_seconds: float
    cost: float
    stopped: str | None
    model: OrcaModel
    schedule: Stage
    refine_steps: int = 0
    selected_step: int = 0
    selection: str = ""
    val_history: list[tuple[int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    val_predictions: np.ndarray | None = None
    step_seconds: float = 0.0

    def scores(self, test: Evaluation) -> dict[str, object]:
        """What a saved model folder records about this run, given its test evaluation."""
        return {
            "val": {"metric": self.val.metric, "value": self.val.value},
            "test": {"metric": test.metric, "value": test.value},
            "initial_align_loss": self.initial_align_loss,
            "final_align_loss": self.final_align_loss,
            "gflops_per_sample": self.cost,
            "train_seconds": self.device_seconds,
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def inference_gflops(model: nn.Module, sample: np.ndarray, device: torch.device) -> float:
    """Forward FLOPs for one sample, counted by torch's FlopCounterMode (GFLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.from_numpy(sample[None]).to(device))
    model.train(was_training)
    return counter.get_total_flops() / 1e9


def run_cycle(
    task: Task,
    config: OrcaConfig,
    *,
    schedule: Stage | str = Stage.FULL,
    callback: CycleCallback | None = None,
    device: str | torch.device | None = None,
) -> CycleResult:
    """Align then refine `task` with `config` under the short or full schedule."""
    callback = callback or CycleCallback()
    dev = pick_device(device)
    cfg = config.schedule(schedule)
    schedule = Stage(schedule)
    make_augmenter(task, cfg.refine.augment, cfg.refine.augment_ops)  # bad ops: refused now
    start = time.perf_counter()
    seed_everything(cfg.seed)
    model = build_model(task, cfg.model, cfg.seed).to(dev)
    outcome = align(model, task, cfg.align, cfg.seed, dev, callback)
    notes = list(model.backbone.notes())
    slow = precision_note(dev, cfg.refine.precision)
    if slow:
        notes.append(slow)

    if not callback.on_align_end(outcome.curve):
        ev = Evaluation("", float("nan"), float("nan"), float("nan"))
        cost = inference_gflops(model, task.train.X[0], dev)
        return _result(ev, outcome, start, cost, "align", model, schedule, notes)
    ref = refine(model, task, cfg.refine, cfg.seed, dev, callback)
    cost = inference_gflops(model, task.train.X[0], dev)  # after refine: LoRA adapters count
    ev, val_predictions = evaluate_with_predictions(model, task, "val", dev)
    result = _result(ev, outcome, start, cost, "refine" if ref.stopped else None, model, schedule, notes)
    result.val_predictions = val_predictions
    result.refine_steps, result.selected_step, result.selection = ref.steps_run, ref.selected_step, ref.selection
    result.val_history = [(s, e.score) for s, e in ref.evaluations]
    result.step_seconds += ref.step_seconds
    return result


def _result(
    ev: Evaluation, outcome: AlignOutcome, start: float, cost: float, stopped: str | None,
    model: OrcaModel, schedule: Stage, notes: list[str],
) -> CycleResult:
    return CycleResult(
        val=ev,
        align_curve=outcome.curve,
        initial_align_loss=outcome.initial,
        final_align_loss=outcome.final,
        device_seconds=time.perf_counter() - start,
        step_seconds=outcome.step_seconds,
        cost=cost,
        stopped=stopped,
        model=model,
        schedule=schedule,
        notes=notes,
    )


def evaluate(
    model: nn.Module, task: Task, split: str = "test", device: str | torch.device | None = None
) -> Evaluation:
    """Metric, score and loss of a trained model on one split ("train", "val" or "test")."""
    return evaluate_with_predictions(model, task, split, device)[0]


def evaluate_with_predictions(
    model: nn.Module, task: Task, split: str = "test", device: str | torch.device | None = None
) -> tuple[Evaluation, np.ndarray]:
    """`evaluate`, and the predictions it scored (the one form of `tasks.to_predictions`)."""
    dev = pick_device(device) if device is not None else next(model.parameters()).device
    part = getattr(task, split)
    outputs = predict(model, part.X, dev)
    return evaluate_outputs(task, part, outputs), task.predictions(outputs)
