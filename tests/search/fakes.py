"""A fake trial runner, a fake clock and a simulated executor: the search logic in milliseconds.

The fake runner derives everything from the config, deterministically: a trial's final
alignment loss falls with more (and better-tuned) alignment steps, its validation score rises
as that loss falls (plus a config-dependent jitter), and its duration is proportional to its
steps. `SimulatedExecutor` runs trials as events on a fake clock (like Syne Tune's simulated
backend), so budget, pruning and promotion are tested without compute. With `real_sleep`
the runner sleeps for its duration instead, for the Ray and SIGKILL tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import heapq
import json
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from orca_automl.cli import build_parser
from orca_automl.config import OrcaConfig, Stage
from orca_automl.evaluation import Evaluation
from orca_automl.search import (
    ExecutionPlan,
    Executor,
    RunKey,
    SearchOptions,
    Toolkit,
    TrialMonitor,
    TrialOutcome,
    TrialRecord,
    TrialRequest,
    TrialResult,
    TrialRunner,
    execute_trial,
    pack_folder,
    run_search,
)
from orca_automl.tasks import metric_for
from orca_automl.tasks._splits import fold_indices

SPACES = Path(__file__).parent / "spaces"
KNOWN_NAMES = {
    "model.backbone": ["minilm", "efficientnet_lite0"],
    "model.embedder": ["conv1d", "patch_mlp", "tabular_linear", "stem_conv", "patch_tokens"],
    "align.metric": ["otdd_gaussian", "mmd", "sliced_wasserstein", "none"],
}
_FITS = {
    ("1d", "minilm"): {"conv1d", "patch_mlp", "auto"},
    ("tabular", "minilm"): {"tabular_linear", "conv1d", "auto"},
    ("2d", "minilm"): {"patch_tokens"},
    ("2d", "efficientnet_lite0"): {"stem_conv", "auto"},
}


@dataclass(frozen=True)
class FakeSplit:
    """Labels only: the fake runner never looks at inputs."""

    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FakeTask:
    """What the search reads from a task: name, modality, type, a data fingerprint, the sizes
    and labels of its splits, its cross-validation folds, and how predictions are scored."""

    name: str = "fake"
    modality: str = "1d"
    task_type: str = "classification"
    data: str = "v1"
    size: int = 40  # training + validation samples; 20 more for test

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.modality}|{self.task_type}|{self.data}".encode()).hexdigest()

    def _labels(self) -> np.ndarray:
        return np.arange(self.size + 20) % 2

    @property
    def train(self) -> FakeSplit:
        return FakeSplit(self._labels()[: self.size * 3 // 4])

    @property
    def val(self) -> FakeSplit:
        return FakeSplit(self._labels()[self.size * 3 // 4 : self.size])

    @property
    def test(self) -> FakeSplit:
        return FakeSplit(self._labels()[self.size :])

    @property
    def development(self) -> FakeSplit:
        return FakeSplit(self._labels()[: self.size])

    def fold_indices(self, k: int, seed: int) -> list[np.ndarray]:
        return fold_indices(self.development.y, k, seed, stratify=True, what=self.name)

    def fold(self, index: int, k: int, seed: int) -> FakeFold:
        return FakeFold(self, self.fold_indices(k, seed)[index])

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Evaluation:
        value = metric_for("classification")(y, predictions)
        return Evaluation("accuracy", value, value, float(self.sample_losses(y, predictions).mean()))

    def sample_losses(self, y: np.ndarray, predictions: np.ndarray) -> np.ndarray:
        return -np.log(np.clip(predictions[np.arange(len(y)), y], 1e-12, None))


@dataclass(frozen=True)
class FakeFold:
    """A fold of a fake task: its rows of the development data are the validation split."""

    task: FakeTask
    rows: np.ndarray

    @property
    def train(self) -> FakeSplit:
        return FakeSplit(np.delete(self.task.development.y, self.rows))

    @property
    def val(self) -> FakeSplit:
        return FakeSplit(self.task.development.y[self.rows])

    @property
    def test(self) -> FakeSplit:
        return self.task.test

    def score(self, y: np.ndarray, predictions: np.ndarray) -> Evaluation:
        return self.task.score(y, predictions)


def fake_predictions(config: OrcaConfig, rows: np.ndarray, labels: np.ndarray,
                     score: float) -> np.ndarray:
    """Class probabilities for `rows`: right (0.75 on the true class) for about a `score`
    share of them, chosen by a hash of the config and the row."""
    right = np.array([_jitter(config, f"row{r}") < score for r in rows])
    p_true = np.where(right, 0.75, 0.25)
    out = np.empty((len(rows), 2))
    out[np.arange(len(rows)), labels] = p_true
    out[np.arange(len(rows)), 1 - labels] = 1 - p_true
    return out


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _jitter(config: OrcaConfig, salt: str) -> float:
    """A deterministic number in [0, 1) per config."""
    digest = hashlib.sha256((salt + json.dumps(config.to_dict(), sort_keys=True)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FakeRunner:
    """A deterministic stand-in for `run_cycle`.

    Args:
        clock: advanced by each trial's duration (None: sleep `real_sleep` x duration for real).
        seconds_per_step: simulated device time per align or refine step.
        noise: how much of the validation score is config jitter rather than alignment.
        fail_when: config key -> value that makes a trial raise.
        real_sleep: real seconds slept per simulated second (with clock None).
    """

    def __init__(
        self, clock: FakeClock | None = None, seconds_per_step: float = 0.1, noise: float = 0.1,
        fail_when: dict[str, Any] | None = None, real_sleep: float = 0.0,
    ) -> None:
        self.clock = clock
        self.seconds_per_step = seconds_per_step
        self.noise = noise
        self.fail_when = fail_when or {}
        self.real_sleep = real_sleep
        self.calls: list[TrialRequest] = []

    def _spend(self, steps: int) -> None:
        seconds = steps * self.seconds_per_step
        if self.clock is not None:
            self.clock.sleep(seconds)
        else:
            time.sleep(seconds * self.real_sleep)

    def run(self, request: TrialRequest, task: Any, monitor: TrialMonitor) -> TrialOutcome:
        self.calls.append(request)
        config = request.config
        self._spend(5)  # building the model
        for dotted, value in self.fail_when.items():
            section, key = dotted.split(".", 1)
            if getattr(getattr(config, section), key) == value:
                raise RuntimeError(f"fake failure for {dotted}={value}")
        run = config.schedule(request.stage)
        quality = 1.0 if request.stage == Stage.FULL else 0.9
        curve: list[float] = []
        final: float | None = None
        if run.align.metric != "none" and run.align.steps > 0:
            start = 2.0 + _jitter(config, "start")
            rate = run.align.lr * 20
            curve = [start * math.exp(-rate * s / 10) + 0.05 for s in range(run.align.steps + 1)]
            final = curve[-1]
            self._spend(run.align.steps)
        fold = request.slot
        jitter = _jitter(config, "score" if fold is None else f"score{fold}")
        base = 0.5 + 0.4 / (1.0 + (final if final is not None else 1.0))
        score = quality * ((1 - self.noise) * base + self.noise * jitter)
        measured = TrialResult(cost=self._cost(config), align_curve=tuple(curve),
                               final_align_loss=final)
        if not monitor.align_finished(curve):
            return TrialOutcome(request.number, measured, fold=fold)
        every = run.refine.eval_every
        for step in range(every, run.refine.steps + 1, every):
            self._spend(every)
            if not monitor.evaluated(step, score * (0.7 + 0.3 * step / run.refine.steps)):
                break
        archive, test, test_predictions = None, None, None
        if request.stage == Stage.FULL:
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "meta.json").write_text(json.dumps({"trial": request.number}))
                archive = pack_folder(Path(tmp))
            test = Evaluation("accuracy", score - 0.01, score - 0.01, 0.3)
            rows = np.arange(len(task.test)) + 10_000
            test_predictions = fake_predictions(config, rows, task.test.y, score - 0.01)
        rows = (np.arange(len(task.val)) if request.fold is None else
                task.fold_indices(request.fold.count, request.fold.seed)[request.fold.index])
        labels = task.val.y if request.fold is None else task.development.y[rows]
        return TrialOutcome(request.number, dataclasses.replace(
            measured, val=Evaluation("accuracy", score, score, 1.0 - score), notes=("fake run",),
            test=test,
        ), archive, fold=fold,
            predictions=None if request.refit else fake_predictions(config, rows, labels, score),
            indices=None if request.fold is None else rows, test_predictions=test_predictions)

    @staticmethod
    def _cost(config: OrcaConfig) -> float:
        return 0.1 * float(config.model.embedder_args.get("target_seq_len", 16))


class SimulatedExecutor(Executor):
    """Trials as events on a fake clock: each trial runs at submit time (advancing a private
    copy of the clock by its duration) and finishes at submit time + duration."""

    def __init__(self, runner: FakeRunner, task: Any, clock: FakeClock, device_share: float = 1.0) -> None:
        assert runner.clock is clock
        self.runner, self.task, self.clock, self.device_share = runner, task, clock, device_share
        self._events: list[tuple[float, int, int, TrialOutcome]] = []
        self._started: dict[RunKey, float] = {}
        self.stages: dict[RunKey, Stage] = {}
        self.max_parallel = 0

    def submit(self, request: TrialRequest) -> None:
        start = self.clock.now
        outcome = execute_trial(self.runner, request, self.task, clock=self.clock)
        end, self.clock.now = self.clock.now, start
        key = (request.number, request.slot)
        heapq.heappush(self._events, (end, request.number, -2 if key[1] is None else key[1],
                                      outcome))
        self._started[key] = start
        self.stages[key] = request.stage
        self.max_parallel = max(self.max_parallel, len(self._started))

    def wait(self, timeout: float) -> list[TrialOutcome]:
        if not self._events:
            return []
        end, number, _, outcome = heapq.heappop(self._events)
        self.clock.now = max(self.clock.now, end)
        key = (number, outcome.fold)
        del self._started[key], self.stages[key]
        return [outcome]

    def in_flight(self) -> dict[RunKey, float]:
        return {k: (self.clock.now - t0) * self.device_share for k, t0 in self._started.items()}


@dataclass(frozen=True)
class FakeBaseline:
    val: np.ndarray
    test: np.ndarray


def fit_fake_baseline(name: str, task: Any, seed: int) -> FakeBaseline:
    """A baseline right on a fixed share of rows (0.9 for "strong", else 0.6)."""
    share = 0.9 if name == "strong" else 0.6

    def predict(y: np.ndarray, salt: int) -> np.ndarray:
        rows = np.arange(len(y)) + salt
        return fake_predictions(OrcaConfig(), rows, y, share)

    return FakeBaseline(predict(task.val.y, 0), predict(task.test.y, 10_000))


def save_fake_baseline(fitted: FakeBaseline, task: Any, seed: int, folder: Path) -> Path:
    """A fake baseline's model folder: meta.json naming what it was fitted on."""
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"baseline": {"seed": seed},
                                                  "rows": len(task.train)}))
    return folder


def fake_toolkit(runner: TrialRunner | None = None, task: FakeTask | None = None,
                 baselines: Sequence[str] = ()) -> Toolkit:
    """The search's view of the package, faked: tasks named `fake-<modality>`."""

    def load(spec: str, seed: int) -> FakeTask:
        if task is not None:
            return task
        if not spec.startswith("fake-"):
            from orca_automl.errors import OrcaInputError

            raise OrcaInputError(f"unknown task {spec!r}: use fake-1d, fake-2d or fake-tabular")
        return FakeTask(name=spec, modality=spec.split("-", 1)[1])

    def fits_for(modality: str):  # type: ignore[no-untyped-def]
        return lambda backbone, embedder: embedder in _FITS.get((modality, backbone), set())

    return Toolkit(load, lambda: KNOWN_NAMES, fits_for, lambda: False, runner or FakeRunner(),
                   save_fake_ensemble, lambda task: list(baselines), fit_fake_baseline,
                   save_fake_baseline)


def save_fake_ensemble(parts: Sequence[tuple[Path, float]], folder: Path,
                       scores: dict[str, Any]) -> Path:
    """An ensemble of fake model folders: the members copied under members/, and bag.json."""
    for i, (member, _) in enumerate(parts):
        shutil.copytree(member, folder / "members" / str(i))
    (folder / "bag.json").write_text(json.dumps({
        "members": len(parts), "weights": [w for _, w in parts], "scores": scores}))
    return folder


def simulated_execution(clock: FakeClock):  # type: ignore[no-untyped-def]
    """An `execution` for `search()` that runs trials on the simulated executor."""

    @contextmanager
    def execution(plan: ExecutionPlan, runner: TrialRunner, task: Any) -> Iterator[Executor]:
        assert isinstance(runner, FakeRunner)
        yield SimulatedExecutor(runner, task, clock, plan.device_share)

    return execution


def options(**overrides: Any) -> SearchOptions:
    """The search's options with test defaults."""
    defaults: dict[str, Any] = {"task": "fake-1d", "budget": "60s",
                                "search_space": str(SPACES / "tiny.yaml"),
                                "validation": "holdout"}  # the tests of folds ask for them
    return SearchOptions(**{**defaults, **overrides})


def args(**overrides: Any) -> argparse.Namespace:
    """Parsed `orca-search` arguments with test defaults (no report unless `no_report=None`:
    tests/report checks reports)."""
    overrides.setdefault("no_report", True)
    argv = ["--task", "fake-1d", "--budget", "60s", "--search-space", str(SPACES / "tiny.yaml"),
            "--validation", "holdout"]
    for key, value in overrides.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None:
            argv += [flag, str(value)]
    return build_parser().parse_args(argv)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (BaseException skips `except Exception`)."""


def killed_after(waits: int) -> type[SimulatedExecutor]:
    """A simulated executor that dies (like a SIGKILLed driver) on its wait number waits + 1."""

    class KilledAfter(SimulatedExecutor):
        def wait(self, timeout: float) -> list[TrialOutcome]:
            self.seen = getattr(self, "seen", 0) + 1
            if self.seen > waits:
                raise Killed()
            return super().wait(timeout)

    return KilledAfter


def search_records(tmp_path: Path, clock: FakeClock, runner: FakeRunner,
                   executor_type: type = SimulatedExecutor, **flags: Any) -> list[TrialRecord]:
    """One search session with the fake runner on an `executor_type` (2 workers and a study
    in tmp_path/study.db unless given), then the study's records."""

    @contextmanager
    def execution(plan: ExecutionPlan, runner_: TrialRunner, task: Any) -> Iterator[Executor]:
        yield executor_type(runner_, task, clock, plan.device_share)

    flags.setdefault("storage", f"sqlite:///{tmp_path}/study.db")
    flags.setdefault("workers", 2)
    run_search(options(**flags), toolkit=fake_toolkit(runner), execution=execution)
    study = optuna.load_study(study_name="fake-1d", storage=flags["storage"])
    return [TrialRecord.from_frozen(t) for t in study.trials]
