"""Where trials run: the executor interface and its Ray implementation.

Ray Tune's Optuna searcher misrecords trial states (it records trials a scheduler stopped as
COMPLETE and drops intermediate values of multi-objective studies), so the driver keeps
Optuna's ask/tell to itself and uses Ray only to run `execute_trial` calls: one Ray task per
trial, `workers` at a time, each holding its CPU share and `gpus_per_trial` GPUs. Trials
holding GPUs get a fresh worker process each (`max_calls=1`) so GPU memory is handed back
between trials; CPU workers are reused, which saves importing torch for every trial. Ray never
retries a crashed trial behind the ledger's back (`max_retries=0`).

Locally the search starts Ray itself, with its files under the study's folder, and stops it at
the end; an address joins an existing cluster instead (whose nodes must have orca-automl
installed). Each worker imports the plugin modules (modules outside the package that registered
backbones, embedders, distances, heads or tasks) before its first trial, so registered names
resolve there as they do in the driver.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_automl.errors import OrcaInputError
from orca_automl.search._records import TrialResult
from orca_automl.search._runner import TrialOutcome, TrialRequest, TrialRunner, execute_trial

#: Ray puts unix sockets under its temp folder; their paths may not exceed 107 bytes, and
#: the session folder and socket name add about 65 more.
_MAX_RAY_TEMP_CHARS = 40


#: One run of a trial: (trial number, its slot: fold index, REFIT, or None for hold-out).
RunKey = tuple[int, int | None]


class Executor(ABC):
    """Runs submitted trial runs in parallel and hands back their outcomes."""

    @abstractmethod
    def submit(self, request: TrialRequest) -> None:
        """Start one run."""

    @abstractmethod
    def wait(self, timeout: float) -> list[TrialOutcome]:
        """Outcomes of runs that finished, waiting up to `timeout` seconds for the first."""

    @abstractmethod
    def in_flight(self) -> dict[RunKey, float]:
        """Each running run -> device-seconds it has used so far."""


@dataclass(frozen=True)
class ExecutionPlan:
    """How to run trials: parallel workers, GPUs per trial, the device share a trial is charged
    for, an existing cluster's address (None: start Ray locally with files in temp_dir), and
    the plugin modules every worker imports."""

    workers: int
    gpus_per_trial: float
    device_share: float
    address: str | None
    temp_dir: Path
    debug: bool = False
    plugins: tuple[str, ...] = ()


class RayExecutor(Executor):
    """One Ray task per trial."""

    def __init__(
        self, runner: TrialRunner, task: Any, cpus_per_trial: float, gpus_per_trial: float,
        device_share: float, plugins: tuple[str, ...] = (),
    ) -> None:
        import ray

        self._ray = ray
        self._runner = runner
        self._task = ray.put(task)
        self._device_share = device_share
        self._plugins = plugins
        self._remote = ray.remote(
            num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0,
            max_calls=1 if gpus_per_trial > 0 else 0,
        )(_execute_in_worker)
        self._running: dict[Any, tuple[RunKey, float]] = {}

    def submit(self, request: TrialRequest) -> None:
        ref = self._remote.remote(self._plugins, self._runner, request, self._task)
        self._running[ref] = ((request.number, request.slot), time.monotonic())

    def wait(self, timeout: float) -> list[TrialOutcome]:
        if not self._running:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        return [self._collect(ref) for ref in ready]

    def in_flight(self) -> dict[RunKey, float]:
        now = time.monotonic()
        return {key: (now - t0) * self._device_share for key, t0 in self._running.values()}

    def _collect(self, ref: Any) -> TrialOutcome:
        (number, fold), t0 = self._running.pop(ref)
        try:
            outcome: TrialOutcome = self._ray.get(ref)
            return outcome
        except self._ray.exceptions.RayError as exc:  # the worker died (OOM kill, segfault)
            wall = time.monotonic() - t0
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return TrialOutcome(number, TrialResult(
                device_seconds=wall * self._device_share, wall_seconds=wall,
                error=f"{type(exc).__name__}: {first_line}",
            ), fold=fold)


def _execute_in_worker(
    plugins: tuple[str, ...], runner: TrialRunner, request: TrialRequest, task: Any
) -> TrialOutcome:
    """`execute_trial` in a Ray worker, once the plugin modules are imported there."""
    for module in plugins:
        importlib.import_module(module)
    return execute_trial(runner, request, task)


def check_resources(workers: int, gpus_per_trial: float, cpus: float, gpus: float, where: str) -> None:
    """Refuse more parallel trials than `where` has CPUs (or GPUs for their shares)."""
    if workers > cpus:
        raise OrcaInputError(
            f"--workers {workers} is more than the {cpus:g} CPUs of {where}: use --workers {int(cpus)} "
            "or fewer"
        )
    if gpus_per_trial * workers > gpus + 1e-9:
        raise OrcaInputError(
            f"--workers {workers} x --gpus-per-trial {gpus_per_trial:g} needs "
            f"{gpus_per_trial * workers:g} GPUs but {where} has {gpus:g}: lower either"
        )


@contextmanager
def ray_execution(plan: ExecutionPlan, runner: TrialRunner, task: Any) -> Iterator[Executor]:
    """Start (or join) Ray, yield a `RayExecutor`, and shut Ray down afterwards."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    level = logging.INFO if plan.debug else logging.WARNING
    if plan.address is None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        _stop_leftovers(plan.temp_dir)
        ray.init(
            num_cpus=len(os.sched_getaffinity(0)),
            include_dashboard=False,
            _temp_dir=str(_ray_temp_dir(plan.temp_dir)),
            log_to_driver=plan.debug,
            logging_level=level,
        )
        where = "this machine"
    else:
        try:
            ray.init(address=plan.address, log_to_driver=plan.debug, logging_level=level)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise OrcaInputError(
                f"cannot join the Ray cluster at --address {plan.address} ({exc}): start it with "
                "`ray start --head` or fix the address"
            ) from None
        where = f"the Ray cluster at {plan.address}"
    try:
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        check_resources(plan.workers, plan.gpus_per_trial, cpus, gpus, where)
        cpus_per_trial = max(1.0, float(int(cpus // plan.workers)))
        yield RayExecutor(runner, task, cpus_per_trial, plan.gpus_per_trial, plan.device_share,
                          plan.plugins)
    finally:
        ray.shutdown()


def _ray_temp_dir(folder: Path) -> Path:
    """Ray's temp folder under the study's folder; when that path is too long for Ray's
    sockets, a short one in the system temp folder, linked from the study's folder."""
    folder = folder.resolve()
    if len(str(folder)) <= _MAX_RAY_TEMP_CHARS:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    short = Path(tempfile.mkdtemp(prefix="orca-ray-"))
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.is_symlink():
        folder.unlink()
    if not folder.exists():
        folder.symlink_to(short, target_is_directory=True)
    return short


def _stop_leftovers(temp_dir: Path) -> None:
    """End Ray helpers that a killed earlier run of this study left behind.

    When a driver is SIGKILLed, its raylet exits but a few helper processes (dashboard and
    runtime-env agents) live on, orphaned. They are recognised exactly: re-parented to init
    and holding files open under this study's own Ray folder.
    """
    proc = Path("/proc")
    if not proc.is_dir() or not temp_dir.exists():
        return
    root = str(temp_dir.resolve()) + os.sep
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == 1 and any(
                os.readlink(fd).startswith(root) for fd in (entry / "fd").iterdir()
            ):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to inspect
