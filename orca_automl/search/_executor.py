"""Where trials run: the executor interface and its Ray implementation.

Ray Tune's Optuna searcher misrecords trial states (it records trials a scheduler stopped as
COMPLETE and drops intermediate values of multi-objective studies), so the driver keeps
Optuna's ask/tell to itself and uses Ray only to run `execute_trial` calls: one Ray task per
trial, `workers` at a time, each holding its CPU share and `gpus_per_trial` GPUs. Trials
holding GPUs get a fresh worker process each (`max_calls=1`) so GPU memory is handed back
between trials; CPU workers are reused, which saves importing torch for every trial. Ray never
retries a crashed trial behind the ledger's back (`max_retries=0`).

Locally the search starts Ray itself, listening on 127.0.0.1 only and requiring a token of its
own, and stops it at the end, when the study's Ray folder keeps that run's logs and nothing of
it is left elsewhere (see `_ray_files.py`). An address joins an existing cluster instead (whose
nodes must have orca-automl installed; the driver brings the cluster's token if it requires
one), once `check_cluster_address` (`_cluster_address.py`) found something listening there. Each run's result names the
node it ran on. Each worker imports the plugin modules (modules outside the package that
registered backbones, embedders, distances, heads or tasks) before its first trial, so
registered names resolve there as they do in the driver.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import re
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_automl.errors import OrcaInputError
from orca_automl.search._ray_files import (
    clear_leftovers,
    keep_last_session,
    ray_temp_dir,
    show_session,
)
from orca_automl.search._records import TrialResult, WorkerNode
from orca_automl.search._runner import TrialOutcome, TrialRequest, TrialRunner, execute_trial

#: The local cluster's address: its servers listen on this machine only (see `_loopback_only`).
LOOPBACK = "127.0.0.1"

#: Ray's variable naming its token file, and the local cluster's token file in its Ray folder.
TOKEN_PATH_VARIABLE = "RAY_AUTH_TOKEN_PATH"
TOKEN_FILE = "auth_token"


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
        except self._ray.exceptions.RayError as exc:  # its worker or node died, or Ray failed
            wall = time.monotonic() - t0
            error, details = describe_ray_error(exc)
            return TrialOutcome(number, TrialResult(
                device_seconds=wall * self._device_share, wall_seconds=wall,
                error=error, traceback=details,
            ), fold=fold)


#: Terminal colour codes, which Ray puts into its error texts.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def describe_ray_error(exc: BaseException) -> tuple[str, str]:
    """A trial's error line and its details from a Ray error: the error's first line (which
    says which node or worker died and why), and, when the text goes on, its last line (the
    cause, e.g. the ModuleNotFoundError of a node without the package); details: the whole
    text, cut to its last 4000 characters."""
    text = _ANSI.sub("", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    if len(lines) > 1:
        error += f" ... {lines[-1]}"
    return error, text[-4000:]


def _execute_in_worker(
    plugins: tuple[str, ...], runner: TrialRunner, request: TrialRequest, task: Any
) -> TrialOutcome:
    """`execute_trial` in a Ray worker, once the plugin modules are imported there; its
    result names the node it ran on (only the worker knows: Ray places the task)."""
    for module in plugins:
        importlib.import_module(module)
    outcome = execute_trial(runner, request, task)
    return dataclasses.replace(outcome, result=dataclasses.replace(outcome.result,
                                                                   node=_this_node()))


def _this_node() -> WorkerNode:
    """The node of the Ray worker this runs in."""
    import ray

    return WorkerNode(socket.gethostname(), ray.util.get_node_ip_address(),
                      ray.get_runtime_context().get_node_id())


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
    """Start (or join) Ray, yield a `RayExecutor`, and shut Ray down afterwards.

    A local Ray's files go to `plan.temp_dir`, the study's Ray folder (through a folder in the
    system temp folder when that path is too long for Ray's sockets, see `ray_temp_dir`).
    However the block ends (done, bad input found once Ray runs, Ctrl-C, an error), once Ray
    has stopped, the study's Ray folder keeps the logs of this run's Ray session only, older
    sessions' are removed, and nothing of this run is left in the system temp folder (see
    `keep_last_session`). Ray writes nowhere else there when given its temp folder (checked
    with Ray 2.60: not /tmp/ray, no session_latest link, no address file).
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    level = logging.INFO if plan.debug else logging.WARNING
    with ExitStack() as stack:
        if plan.address is None:
            folder = clear_leftovers(plan.temp_dir.absolute())
            temp_dir, scratch = ray_temp_dir(folder)
            stack.callback(keep_last_session, folder, temp_dir, scratch)
            stack.enter_context(_local_token(folder / TOKEN_FILE))
            stack.callback(ray.shutdown)  # also after a start that failed half way
            with _loopback_only(), _quiet_token_notice(plan.debug), _without("RAY_ADDRESS"):
                ray.init(
                    num_cpus=len(os.sched_getaffinity(0)),
                    include_dashboard=False,
                    _node_ip_address=LOOPBACK,
                    _temp_dir=str(temp_dir),
                    log_to_driver=plan.debug,
                    logging_level=level,
                )
            show_session(folder, temp_dir)
            where = "this machine"
        else:
            stack.callback(ray.shutdown)
            try:
                ray.init(address=plan.address, log_to_driver=plan.debug, logging_level=level)
            except (ray.exceptions.AuthenticationError, ConnectionError, RuntimeError,
                    ValueError) as exc:
                raise OrcaInputError(_join_refused(plan.address, exc)) from None
            where = f"the Ray cluster at {plan.address}"
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
        check_resources(plan.workers, plan.gpus_per_trial, cpus, gpus, where)
        cpus_per_trial = max(1.0, float(int(cpus // plan.workers)))
        yield RayExecutor(runner, task, cpus_per_trial, plan.gpus_per_trial, plan.device_share,
                          plan.plugins)


def _join_refused(address: str, exc: BaseException) -> str:
    """One line on why the cluster at `address` could not be joined, and what to do. Ray
    reports a refused token as a connection failure after ~25 s of retries, its cause (an
    authentication error) inside the chained errors' text."""
    causes = [exc]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    if any(type(c).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(c)
           for c in causes):
        return (f"the Ray cluster at --address {address} refused this driver's token (or it "
                "sent none): run it with RAY_AUTH_MODE=token and the cluster's token in "
                "RAY_AUTH_TOKEN_PATH=<token file> or RAY_AUTH_TOKEN")
    return (f"cannot join the Ray cluster at --address {address} ({exc}): start it with "
            "`ray start --head` or fix the address")


@contextmanager
def _local_token(path: Path) -> Iterator[None]:
    """A fresh Ray token for the local cluster, for as long as it runs.

    Ray 2.60 requires a token by default; left alone, it would write one into the home folder
    (~/.ray/auth_token), where every later Ray cluster of the user picks it up. Instead the
    token is a file only this user reads, in the cluster's own Ray folder, named by
    RAY_AUTH_TOKEN_PATH, which the cluster's processes inherit; it is removed at the end. Ray
    caches the token per process, so the cache is reset on both sides (a process may start
    several clusters). RAY_AUTH_TOKEN or RAY_AUTH_MODE set by the user still win.
    """
    from ray._raylet import (  # type: ignore[attr-defined]  # compiled: not in its stub
        AuthenticationTokenLoader,  # the cache `ray get-auth-token --generate` resets
    )

    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32))
    path.chmod(0o600)  # a file left by an earlier run keeps its mode through O_CREAT
    before = os.environ.get(TOKEN_PATH_VARIABLE)
    os.environ[TOKEN_PATH_VARIABLE] = str(path)
    AuthenticationTokenLoader.instance().reset_cache()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TOKEN_PATH_VARIABLE, None)
        else:
            os.environ[TOKEN_PATH_VARIABLE] = before
        AuthenticationTokenLoader.instance().reset_cache()
        path.unlink(missing_ok=True)


@contextmanager
def _loopback_only() -> Iterator[None]:
    """Start the local cluster's servers on 127.0.0.1 only.

    Ray's servers listen on all interfaces unless the node's address is 127.0.0.1, and
    `ray.init` replaces a node address of 127.0.0.1 with the machine's outward one (so other
    nodes could join) unless Ray runs as a one-machine cluster, its mode for macOS and Windows
    (`ray_constants.ENABLE_RAY_CLUSTER`, read when the node's address is resolved). That mode
    is switched on while `ray.init` starts the cluster, then restored, so a later `--address`
    join still announces the machine's reachable address.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


@contextmanager
def _without(variable: str) -> Iterator[None]:
    """The environment without `variable` for the block: a local start must not join the
    cluster RAY_ADDRESS names (only --address joins one)."""
    saved = os.environ.pop(variable, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[variable] = saved


@contextmanager
def _quiet_token_notice(debug: bool) -> Iterator[None]:
    """Hide Ray's notice that token authentication is on ("set RAY_AUTH_MODE=disabled to opt
    out"): the search keeps it on on purpose (shown with --debug)."""
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    saved = notice.level
    if not debug:
        notice.setLevel(logging.ERROR)
    try:
        yield
    finally:
        notice.setLevel(saved)


