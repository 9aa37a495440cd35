"""Stage 3, refine: train every weight on the task loss, sized in optimizer steps.

The embedder and head are new and get `new_lr`; the pretrained body gets the smaller `lr`.
Warmup is linear, then the rate stays constant or decays (linear / cosine). The checkpoint
kept is the best by validation score (validation loss breaks ties) when the validation set is
big enough to choose, and the final one when it is not.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from orca_automl.config import RefineConfig
from orca_automl.cycle._augment import make_augmenter
from orca_automl.cycle._bridge import bridged_forward, make_bridge
from orca_automl.cycle._callback import CycleCallback
from orca_automl.cycle._model import OrcaModel
from orca_automl.cycle._scope import param_groups
from orca_automl.evaluation import Evaluation
from orca_automl.tasks import Split, Task, loss_for, metric_for


@dataclass
class RefineOutcome:
    evaluations: list[tuple[int, Evaluation]]
    selected_step: int
    selection: str  # "best" or "final"
    steps_run: int
    stopped: bool
    step_seconds: float = 0.0  # in training steps, evaluations not included


def _targets(task: Task, y: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(task.normalizer.normalize_y(y)))
    return t.long().to(device) if task.task_type == "classification" else t.float().to(device)


@torch.no_grad()
def predict(
    model: nn.Module,
    X: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
    precision: str = "auto",
) -> np.ndarray:
    """Raw model outputs (logits, or normalised regression/dense values) for inputs X."""
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(X), batch_size):
        xb = torch.from_numpy(X[start : start + batch_size]).to(device)
        with _autocast(device, precision):
            outs.append(model(xb).float().cpu())
    model.train(was_training)
    return torch.cat(outs).numpy()


def evaluate_split(
    model: nn.Module, task: Task, split: Split, device: torch.device, precision: str = "auto"
) -> Evaluation:
    """Metric (original target units), score (higher is better) and loss on one split."""
    return evaluate_outputs(task, split, predict(model, split.X, device, precision=precision))


def evaluate_outputs(task: Task, split: Split, outputs: np.ndarray) -> Evaluation:
    """Metric, score and the training loss of a model's raw outputs for one split."""
    loss_fn = loss_for(task.task_type)
    loss = float(loss_fn(torch.from_numpy(outputs), _targets(task, split.y, torch.device("cpu"))))
    metric = metric_for(task.task_type)
    value = metric(split.y, task.predictions(outputs))
    return Evaluation(metric.name, value, metric.score(value), loss)


def precision_note(device: torch.device, precision: str) -> str | None:
    """A warning when `precision` makes refine slow on this device: bf16 on a CPU without
    native bf16 instructions (avx512_bf16, AMX) is emulated (15x slower than fp32 in
    docs/benchmarks/ablation_options.md on such a CPU)."""
    if precision != "bf16" or device.type != "cpu" or cpu_has_native_bf16():
        return None
    return ("precision bf16 on a CPU without native bf16 (avx512_bf16 or AMX): emulated and "
            "much slower than fp32; use precision auto")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN's own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: assume not
        return False


def _autocast(device: torch.device, precision: str = "auto") -> torch.autocast:
    """bf16 mixed precision for "bf16", and for "auto" on CUDA; otherwise a disabled context."""
    enabled = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _optimizer(model: OrcaModel, config: RefineConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, weight_decay=config.weight_decay)


def _lr_factor(step: int, config: RefineConfig) -> float:
    warm = int(config.warmup * config.steps)
    if step < warm:
        return (step + 1) / warm
    if config.decay == "constant":
        return 1.0
    progress = (step - warm) / max(1, config.steps - warm)
    if config.decay == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def refine(
    model: OrcaModel,
    task: Task,
    config: RefineConfig,
    seed: int,
    device: torch.device,
    callback: CycleCallback,
) -> RefineOutcome:
    """Fine-tune; on return `model` holds the selected checkpoint's weights."""
    optimizer = _optimizer(model, config)
    bridge = make_bridge(model, config, seed, device)
    if bridge is not None:
        optimizer.add_param_group({"params": list(bridge.parameters()), "lr": config.new_lr})
    bridge_gen = torch.Generator().manual_seed(seed + 2)
    augmenter = make_augmenter(task, config.augment, config.augment_ops)
    augment_gen = torch.Generator().manual_seed(seed + 3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    loss_fn = loss_for(task.task_type)
    X = torch.from_numpy(task.train.X)
    Y = _targets(task, task.train.y, torch.device("cpu"))
    n = len(X)
    gen = torch.Generator().manual_seed(seed + 1)
    order = torch.randperm(n, generator=gen)
    cursor = 0
    select = config.select
    if select == "auto":
        select = "best" if len(task.val) >= config.min_val_for_best else "final"

    evaluations: list[tuple[int, Evaluation]] = []
    best_key: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_step = 0
    stopped = False
    step = 0
    model.train()
    step_seconds = 0.0
    for step in range(1, config.steps + 1):
        began = time.perf_counter()
        if cursor + config.batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        xb, yb = X[idx], Y[idx].to(device)
        if augmenter is not None:  # training batches only
            xb = augmenter(xb, augment_gen)
        xb = xb.to(device)
        with _autocast(device, config.precision):
            if bridge is not None and bridge.share_at(step - 1) > 0:
                out = bridged_forward(model, bridge, xb, step - 1, bridge_gen)
            else:
                out = model(xb)
        if task.task_type == "classification":
            loss = F.cross_entropy(out.float(), yb, label_smoothing=config.label_smoothing)
        else:
            loss = loss_fn(out.float(), yb)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {float(loss)} at step {step}: lower refine.lr / new_lr"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip > 0:
            nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.clip)
        optimizer.step()
        scheduler.step()
        step_seconds += time.perf_counter() - began
        if step % config.eval_every == 0 or step == config.steps:
            ev = evaluate_split(model, task, task.val, device, config.precision)
            evaluations.append((step, ev))
            key = (ev.score, -ev.loss)
            if select == "best" and (best_key is None or key > best_key):
                best_key, best_step = key, step
                best_state = copy.deepcopy(model.state_dict())
            if not callback.on_eval(step, ev.score, ev.loss):
                stopped = True
                break
    if select == "best" and best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_step = step
    return RefineOutcome(evaluations, best_step, select, step, stopped, step_seconds)
