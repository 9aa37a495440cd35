"""What runs inside one trial: the runner interface, its real adapter to `run_cycle`, and the
toolkit that binds the search to the rest of the package.

The search logic only sees `TrialRunner.run(request, task, monitor) -> RunReport`. The real
`CycleRunner` turns the sampled config into one `run_cycle` call and hooks the trial's pruning
rules into the cycle's callback; tests plug in a fake runner with a fake clock instead.
`execute_trial` wraps any runner with what every trial needs: timing, the final state, and
errors caught into the outcome, so a broken trial becomes a FAIL row rather than a crash.
"""

from __future__ import annotations

import io
import math
import tarfile
import tempfile
import time
import traceback
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orca_automl.search._pruning import AlignPruneRule, RefinePruneRule, TrialMonitor


@dataclass(frozen=True)
class TrialRequest:
    """One trial to run: its config, stage, device share and the pruning rules it starts with."""

    number: int
    stage: str
    config: dict[str, Any]
    device_share: float = 1.0
    align_rule: AlignPruneRule | None = None
    refine_rule: RefinePruneRule | None = None

    def __post_init__(self) -> None:
        if self.stage not in ("short", "full"):
            raise ValueError(f"stage must be 'short' or 'full', got {self.stage!r}")


@dataclass(frozen=True)
class RunReport:
    """What a runner measured. A full-stage run also returns its saved model folder (as a tar,
    so it travels back from any node of a cluster) and its test scores."""

    val_score: float
    val_metric: float
    metric_name: str
    val_loss: float
    cost: float
    align_curve: list[float] = field(default_factory=list)
    final_align_loss: float | None = None
    notes: list[str] = field(default_factory=list)
    model_archive: bytes | None = None
    test: dict[str, Any] | None = None


@dataclass(frozen=True)
class TrialOutcome:
    """The result the driver records: state is "complete", "pruned" or "fail"."""

    number: int
    stage: str
    state: str
    device_seconds: float
    wall_seconds: float
    report: RunReport | None = None
    val_curve: list[tuple[int, float]] = field(default_factory=list)
    pruned_reason: str | None = None
    error: str | None = None
    traceback: str | None = None


class TrialRunner(Protocol):
    """Runs one trial. Call `monitor.align_finished(curve)` after the align stage and
    `monitor.evaluated(step, score)` at each refine evaluation; stop when either is False."""

    def run(self, request: TrialRequest, task: Any, monitor: TrialMonitor) -> RunReport: ...


def execute_trial(
    runner: TrialRunner, request: TrialRequest, task: Any, clock: Callable[[], float] = time.monotonic
) -> TrialOutcome:
    """Run one trial and turn whatever happens into an outcome (never raises for the trial's
    own errors). Device time is the trial's wall time times its device share."""
    monitor = TrialMonitor(request.align_rule, request.refine_rule)
    start = clock()
    try:
        report = runner.run(request, task, monitor)
    except Exception as exc:
        wall = clock() - start
        return TrialOutcome(
            request.number, request.stage, "fail", wall * request.device_share, wall,
            val_curve=monitor.val_curve, error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc()[-4000:],
        )
    wall = clock() - start
    state, error = "complete", None
    if monitor.reason is not None:
        state = "pruned"
    elif not (math.isfinite(report.val_score) and math.isfinite(report.cost)):
        state, error = "fail", f"non-finite result: val_score={report.val_score}, cost={report.cost}"
    return TrialOutcome(
        request.number, request.stage, state, wall * request.device_share, wall, report,
        val_curve=monitor.val_curve, pruned_reason=monitor.reason, error=error,
    )


class CycleRunner:
    """The real runner: one `run_cycle` per trial, with the short or the full schedule.

    A full-schedule run that finishes is a winner: it is evaluated on the test split (the only
    place the search touches test data) and saved as a model folder `orca-predict` loads.
    """

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def run(self, request: TrialRequest, task: Any, monitor: TrialMonitor) -> RunReport:
        from orca_automl.config import OrcaConfig
        from orca_automl.cycle import CycleCallback, evaluate, run_cycle, save_model

        class Hooks(CycleCallback):
            def on_align_end(self, curve: list[float]) -> bool:
                return monitor.align_finished(curve)

            def on_eval(self, step: int, val_score: float, val_loss: float) -> bool:
                return monitor.evaluated(step, val_score)

        config = OrcaConfig.from_dict(request.config)
        result = run_cycle(task, config, schedule=request.stage, callback=Hooks(), device=self.device)
        archive, test = None, None
        if request.stage == "full" and result.stopped is None:
            test = evaluate(result.model, task, "test")
            with tempfile.TemporaryDirectory(prefix="orca-winner-") as tmp:
                folder = save_model(result.model, task, config, Path(tmp) / "model",
                                    scores=result.scores(test), notes=result.notes)
                archive = pack_folder(folder)
        return RunReport(
            val_score=result.val_score,
            val_metric=result.val_metric,
            metric_name=result.metric_name,
            val_loss=result.val_loss,
            cost=result.cost,
            align_curve=[float(v) for v in result.align_curve],
            final_align_loss=result.final_align_loss,
            notes=list(result.notes),
            model_archive=archive,
            test=test,
        )


def pack_folder(folder: Path) -> bytes:
    """A folder as an in-memory tar (its contents at the archive's root)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def unpack_folder(archive: bytes, folder: Path) -> Path:
    """Write a `pack_folder` archive into `folder` (created; must not exist yet)."""
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(folder, filter="data")
    return folder


@dataclass(frozen=True)
class Toolkit:
    """What the search needs from the rest of the package, in one place so tests can swap it.

    load_task(spec, seed) -> Task; known_names: config key -> registered names (for space
    validation); embedder_fits(modality) -> fits(backbone, embedder); gpu_visible() for GPU
    budgets; runner runs the trials.
    """

    load_task: Callable[[str, int], Any]
    known_names: Callable[[], Mapping[str, Collection[str]]]
    embedder_fits: Callable[[str], Callable[[str, str], bool]]
    gpu_visible: Callable[[], bool]
    runner: TrialRunner


def cycle_toolkit() -> Toolkit:
    """The real toolkit: built-in tasks and files, the registries, and `CycleRunner`."""

    def load(spec: str, seed: int) -> Any:
        from orca_automl.tasks import load_task

        return load_task(spec, seed=seed)

    def known_names() -> dict[str, list[str]]:
        from orca_automl.alignment import ALIGNMENT_METRICS
        from orca_automl.backbones import BACKBONES
        from orca_automl.embedders import EMBEDDERS

        return {
            "model.backbone": BACKBONES.names(),
            "model.embedder": EMBEDDERS.names(),
            "align.metric": ALIGNMENT_METRICS.names(),
        }

    def embedder_fits(modality: str) -> Callable[[str, str], bool]:
        from orca_automl.backbones import BACKBONES, DEFAULT_BACKBONES
        from orca_automl.embedders import DEFAULT_EMBEDDERS, compatible_embedders

        def fits(backbone: str, embedder: str) -> bool:
            name = DEFAULT_BACKBONES.get(modality, "") if backbone == "auto" else backbone
            if name not in BACKBONES:
                return False
            # Builders are annotated with the backbone class they return, whose `kind`
            # ("sequence" or "image") is known without loading any weights.
            kind = getattr(typing.get_type_hints(BACKBONES.get(name)).get("return"), "kind", None)
            if embedder == "auto":
                return (modality, kind) in DEFAULT_EMBEDDERS
            return embedder in compatible_embedders(modality, kind)

        return fits

    def gpu_visible() -> bool:
        import torch

        return bool(torch.cuda.is_available())

    return Toolkit(load, known_names, embedder_fits, gpu_visible, CycleRunner())
