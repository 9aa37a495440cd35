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
it is left elsewhere (see `ray_execution`). An address joins an existing cluster instead (whose
nodes must have orca-automl installed; the driver brings the cluster's token if it requires
one), once `check_cluster_address` found something listening there. Each run's result names the
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
import shutil
import signal
import socket
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_automl.errors import OrcaInputError
from orca_automl.search._records import TrialResult, WorkerNode
from orca_automl.search._runner import TrialOutcome, TrialRequest, TrialRunner, execute_trial

#: Ray puts unix sockets under its temp folder; their paths may not exceed 107 bytes, and
#: the session folder and socket name add about 65 more.
_MAX_RAY_TEMP_CHARS = 40

#: Name prefix of the folders made in the system temp folder for Ray's sockets, when the
#: study's Ray folder has too long a path for them (see `_ray_temp_dir`).
_SCRATCH_PREFIX = "orca-ray-"

#: Ray's link to its newest session folder, in its temp folder; the study's Ray folder has one.
SESSION_LATEST = "session_latest"

#: Seconds `check_cluster_address` waits for a cluster's address to answer.
CONNECT_TIMEOUT = 5.0

#: What `--address` takes, for the one-line errors.
_ADDRESS_FORMS = ("give ray://HOST:PORT (a Ray Client server, port 10001 by default), HOST:PORT "
                  "(the cluster's GCS, port 6379 by default) or auto (the cluster `ray start` "
                  "started on this machine), or leave --address out to start Ray here")

_log = logging.getLogger(__name__)

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


def check_cluster_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Refuse `--address` unless it is well formed and something answers there within `timeout`
    seconds: Ray itself, given an address where nothing listens, retries for minutes.

    `ray://HOST:PORT` names a Ray Client server, `HOST:PORT` a cluster's GCS, and `auto` the
    cluster Ray finds on its own: the one RAY_ADDRESS names, else the one `ray start` recorded
    or a running one on this machine. Read-only: it only opens (and closes) a TCP connection.
    A cluster that answers but refuses the join is told apart later, by `ray_execution`.
    """
    where = f"--address {address}"
    if address == "auto":
        address = _auto_address()
        where = f"--address auto ({address})"
    host, port = _host_and_port(address, where)
    if address.startswith("ray://"):
        _check_ray_client(where)
    problem = _unreachable(host, port, timeout)
    if problem is not None:
        raise OrcaInputError(
            f"cannot reach the Ray cluster at {where} ({problem}): start it with "
            "`ray start --head` on that machine, or fix the address"
        )


def _auto_address() -> str:
    """The address `ray.init(address="auto")` would join, found the way Ray finds it."""
    from ray._private import services

    try:
        found: str = services.get_ray_address_from_environment("auto", None)
    except ConnectionError:
        raise OrcaInputError(
            "--address auto: no Ray cluster runs on this machine (no RAY_ADDRESS, none started "
            "with `ray start`): start one with `ray start --head`, or give its address"
        ) from None
    return found


def _check_ray_client(where: str) -> None:
    """Refuse a Ray Client address when Ray Client's own dependencies (grpcio, which plain
    `pip install ray` leaves out) are missing: Ray would say so only after connecting."""
    import ray
    from ray._private.utils import get_ray_client_dependency_error

    missing = get_ray_client_dependency_error()
    if missing is not None:
        raise OrcaInputError(
            f"{where}: joining through Ray Client needs ray[client], which is not installed "
            f"({missing}): pip install 'ray[client]=={ray.__version__}' here, or give the "
            "cluster's GCS address HOST:PORT (port 6379 by default)"
        )


def _host_and_port(address: str, where: str) -> tuple[str, int]:
    """The host and port of a Ray address (`[v6-address]:PORT` for IPv6, as Ray writes it)."""
    scheme, separator, rest = address.partition("://")
    if not separator:
        scheme, rest = "", address
    if rest.startswith("["):  # [v6-address]:PORT
        host, bracket, port = rest[1:].partition("]")
        colon = ":" if bracket and port.startswith(":") else ""
        port = port[1:]
    else:
        host, colon, port = rest.rpartition(":")
    if scheme not in ("", "ray"):
        problem: str | None = f"{scheme}:// is not a Ray address"
    elif ":" in host and not rest.startswith("["):
        problem = "an IPv6 address goes in brackets, e.g. [::1]:6379"
    else:
        problem = _problem(host, port, bool(colon))
    if problem is not None:
        raise OrcaInputError(f"{where}: {problem}; {_ADDRESS_FORMS}")
    return host, int(port)


def _problem(host: str, port: str, has_port: bool) -> str | None:
    """What is wrong with an address's host and port, if anything."""
    if not has_port or not port:
        return "no port"
    if not host or host.isspace():
        return "no host"
    if not (port.isascii() and port.isdigit()):
        return f"port {port!r} is not a number"
    if not 0 < int(port) < 65536:
        return f"port {int(port)} is not between 1 and 65535"
    return None


def _unreachable(host: str, port: int, timeout: float) -> str | None:
    """Why nothing answers at host:port within `timeout` seconds (None: something does): the
    host's name does not resolve, or no address of it accepts a connection."""
    deadline = time.monotonic() + timeout
    try:
        addresses = _resolve(host, port, timeout)
    except TimeoutError:
        return f"looking up {host} timed out after {timeout:g} s"
    except (OSError, UnicodeError):
        return f"host {host} not found"
    problem = f"timed out after {timeout:g} s"
    for family, kind, protocol, _, address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            return problem
        with socket.socket(family, kind, protocol) as probe:
            probe.settimeout(left)
            try:
                probe.connect(address)
                return None
            except TimeoutError:
                problem = f"timed out after {timeout:g} s"
            except ConnectionRefusedError:
                problem = "connection refused"
            except OSError as exc:
                problem = (exc.strerror or str(exc)).lower()
    return problem


def _resolve(host: str, port: int, timeout: float) -> list[Any]:
    """`socket.getaddrinfo` for TCP, given up on after `timeout` seconds (a slow name server
    would otherwise hold the check for as long as it likes)."""
    found: list[Any] = []
    failed: list[BaseException] = []

    def look_up() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            failed.append(exc)

    lookup = threading.Thread(target=look_up, daemon=True, name="orca-address-lookup")
    lookup.start()
    lookup.join(timeout)
    if lookup.is_alive():
        raise TimeoutError(host)
    if failed:
        raise failed[0]
    return found


@contextmanager
def ray_execution(plan: ExecutionPlan, runner: TrialRunner, task: Any) -> Iterator[Executor]:
    """Start (or join) Ray, yield a `RayExecutor`, and shut Ray down afterwards.

    A local Ray's files go to `plan.temp_dir`, the study's Ray folder (through a folder in the
    system temp folder when that path is too long for Ray's sockets, see `_ray_temp_dir`).
    However the block ends (done, bad input found once Ray runs, Ctrl-C, an error), once Ray
    has stopped, the study's Ray folder keeps the logs of this run's Ray session only, older
    sessions' are removed, and nothing of this run is left in the system temp folder (see
    `_keep_last_session`). Ray writes nowhere else there when given its temp folder (checked
    with Ray 2.60: not /tmp/ray, no session_latest link, no address file).
    """
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    level = logging.INFO if plan.debug else logging.WARNING
    with ExitStack() as stack:
        if plan.address is None:
            folder = _clear_leftovers(plan.temp_dir.absolute())
            temp_dir, scratch = _ray_temp_dir(folder)
            stack.callback(_keep_last_session, folder, temp_dir, scratch)
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
            _show_session(folder, temp_dir)
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


def _ray_temp_dir(folder: Path) -> tuple[Path, Path | None]:
    """Ray's temp folder for one run, and the folder made for it in the system temp folder
    (None: none was).

    `folder`, the study's Ray folder, is made (mode 0700). Ray's temp folder is `folder` itself
    when its path is short enough for Ray's sockets; else `<system temp>/orca-ray-XXXX/ray` in
    a folder only this user may enter (Ray opens its temp folder to everyone), which
    `folder`'s `session_latest` links to while Ray runs (and its session, see
    `_show_session`): the live logs are at `<folder>/session_latest/logs` either way.
    """
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if len(str(folder)) <= _MAX_RAY_TEMP_CHARS:
        return folder, None
    scratch = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX))
    temp_dir = scratch / "ray"
    link = folder / SESSION_LATEST
    _remove(link)
    link.symlink_to(temp_dir / SESSION_LATEST)
    return temp_dir, scratch


def _show_session(folder: Path, temp_dir: Path) -> None:
    """Once Ray has started: close its temp folder to other users again (Ray opens it to
    everyone, mode 0777) and, when that is not `folder`, link its session folder from
    `folder` under the name it will be kept by (see `_keep_last_session`)."""
    temp_dir.chmod(0o700)
    session = _ray_session(temp_dir)
    if temp_dir != folder and session is not None:
        link = folder / session.name
        _remove(link)
        link.symlink_to(session, target_is_directory=True)


def _keep_last_session(folder: Path, temp_dir: Path, scratch: Path | None) -> None:
    """Once Ray has stopped: `folder`, the study's Ray folder, keeps the logs of this run's
    Ray session, moved there from the system temp folder if Ray ran there, as
    `<folder>/session_<time>/logs` with `session_latest` linking to it, and nothing else;
    `scratch`, the folder Ray ran in in the system temp folder, is removed. A run that made
    no session (Ray failed to start) keeps the newest earlier one. Folders are left mode 0700.
    The logs are worth less than the search's result: failing to keep them is logged, not
    raised."""
    try:
        session = _ray_session(temp_dir)
        if session is not None and scratch is not None:
            kept = folder / session.name
            if kept.is_symlink():  # the link to it while Ray ran
                kept.unlink()
            kept.mkdir(mode=0o700, exist_ok=True)
            if (session / "logs").is_dir():
                shutil.move(session / "logs", kept / "logs")
        _prune_sessions(folder, session.name if session is not None else None)
    except OSError as exc:
        _log.warning("Ray's logs of this run were not kept in %s: %s", folder, exc)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _ray_session(temp_dir: Path) -> Path | None:
    """The session folder Ray made in `temp_dir` (its `session_latest` link), if any."""
    latest = temp_dir / SESSION_LATEST
    if not latest.is_symlink():
        return None
    session = latest.resolve()
    return session if session.is_dir() else None


def _prune_sessions(folder: Path, current: str | None) -> None:
    """Keep in `folder` the logs of session `current` (None: the newest session there) and
    nothing else; link `session_latest` to it, and close its folders to other users."""
    sessions = sorted(entry.name for entry in folder.iterdir()
                      if entry.name.startswith("session_") and entry.name != SESSION_LATEST
                      and entry.is_dir() and not entry.is_symlink())
    keep = current if current in sessions else (sessions[-1] if sessions else None)
    for entry in folder.iterdir():
        if entry.name != keep:
            _remove(entry)
    if keep is not None:
        for entry in (folder / keep).iterdir():
            if entry.name != "logs":
                _remove(entry)
        (folder / SESSION_LATEST).symlink_to(keep, target_is_directory=True)
    for root, names, _ in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    folder.chmod(0o700)


def _remove(path: Path) -> None:
    """Remove a file, link or folder (a link, not what it points to), if there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _clear_leftovers(folder: Path) -> Path:
    """Clear what a killed earlier run of this study left, and return `folder` (the study's
    Ray folder) with its path resolved.

    A killed driver leaves Ray helper processes running (see `_stop_leftovers`), and, when Ray
    ran in the system temp folder, that folder: found through `folder`'s `session_latest`
    link (or `folder` itself, which earlier versions linked there), and removed with the link.
    """
    scratch = _linked_scratch(folder) or _linked_scratch(folder / SESSION_LATEST)
    _stop_leftovers(folder)
    if scratch is not None:
        _stop_leftovers(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    if folder.is_symlink():
        folder.unlink()
    return folder.resolve()


def _linked_scratch(link: Path) -> Path | None:
    """The folder in the system temp folder that `link` points into, if `_ray_temp_dir`
    made it (`<temp>/orca-ray-XXXX`, linked as `<temp>/orca-ray-XXXX/ray/session_latest`, or,
    by earlier versions, as the folder itself)."""
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    system_temp = Path(tempfile.gettempdir())
    for scratch in (target, target.parent.parent):
        shape = target == scratch or target == scratch / "ray" / SESSION_LATEST
        if (shape and scratch.parent == system_temp and scratch.name.startswith(_SCRATCH_PREFIX)
                and scratch.is_dir() and not scratch.is_symlink()
                and not link.absolute().is_relative_to(scratch)):
            return scratch
    return None


def _stop_leftovers(temp_dir: Path) -> None:
    """End Ray helpers that a killed earlier run of this study left behind.

    When a driver is SIGKILLed, its raylet exits but a few helper processes (dashboard and
    runtime-env agents) live on, orphaned. They are recognised exactly: re-parented to init
    and holding files open under `temp_dir`, a Ray folder of this study's own.
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
