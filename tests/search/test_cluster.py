"""`orca-search --address` on a real two-node Ray cluster, and a node dying mid-trial.

The cluster runs on this machine: a head node and a second node, one CPU each, started with
`ray start` (each with its own temp folder, with token authentication on and a token file of
the test's own), and stopped by stopping exactly their processes (a bare `ray stop` would end
every Ray on the machine). The driver is the real `orca-search` command wired to the fake
runner (trials sleep for real, about a second each), so these tests check where trials run,
what comes back to the driver and how a lost node is accounted for, not model training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import optuna
import pytest
from optuna.trial import TrialState

from orca_automl.search import Stage, TrialRecord, study_folder
from tests.search import ray_processes
from tests.search.fakes import SPACES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MARK = "ORCA_TEST_RAY_NODE"
STUDY = "fake-1d"

#: The GCS declares a node dead after 3 missed health checks a second apart (Ray's default
#: takes about 15 s), so a test sees a killed node's trial fail within a few seconds.
QUICK_NODE_DEATH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                    "RAY_health_check_failure_threshold": "3"}

#: How many nodes the cluster at argv[1] has alive, asked of its GCS with the caller's token.
ALIVE_NODES = """
import sys
from ray._raylet import GcsClient
from ray.core.generated.gcs_pb2 import GcsNodeInfo
nodes = GcsClient(address=sys.argv[1]).get_all_node_info(timeout=10).values()
print(sum(node.state == GcsNodeInfo.ALIVE for node in nodes))
"""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A running two-node cluster: its address, the environment a driver joins it with (the
    token, and this repository on the path as an installed package would be), and the mark
    of each node's processes."""

    address: str
    env: dict[str, str]
    marks: dict[str, str]

    def processes(self, node: str) -> set[int]:
        return {p for p in ray_processes.marked(MARK, self.marks[node]) if ray_processes.alive(p)}

    def node_id(self, node: str) -> str:
        """The Ray node id of `node`, from its raylet's command line."""
        for pid in self.processes(node):
            for arg in ray_processes.command_line(pid).split():
                if arg.startswith("--node_id="):
                    return arg.split("=", 1)[1]
        raise AssertionError(f"no raylet runs for {node}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ray_start(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "ray"), "start", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _wait_for(what: Callable[[], T | None], seconds: float, message: str) -> T:
    deadline = time.monotonic() + seconds
    while (found := what()) is None:
        assert time.monotonic() < deadline, message
        time.sleep(0.1)
    return found


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A head node and a second node on this machine, one CPU each, token authentication on;
    afterwards exactly their processes are stopped, and none may survive."""
    temp = Path(tempfile.mkdtemp(prefix="orca-c-"))  # short: Ray's socket paths live under it
    token = temp / "token"
    token.touch(mode=0o600)
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != MARK}
    env |= {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    marks = {"head": uuid.uuid4().hex, "node2": uuid.uuid4().hex}
    port = _free_port()
    address = f"127.0.0.1:{port}"
    running = Cluster(address, env, marks)
    try:
        _ray_start(["--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false",
                    "--temp-dir", str(temp / "head")],
                   env | QUICK_NODE_DEATH | {MARK: marks["head"]})
        _ray_start(["--address", address, "--num-cpus", "1", "--temp-dir", str(temp / "node2")],
                   env | {MARK: marks["node2"]})
        _wait_for(lambda: True if subprocess.run(
            [sys.executable, "-c", ALIVE_NODES, address], env=env, capture_output=True, text=True,
            timeout=60).stdout.strip() == "2" else None, 30, "the second node never joined")
        yield running
    finally:
        left = (ray_processes.stop_node(running.processes("node2"))
                | ray_processes.stop_node(running.processes("head")))
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, [ray_processes.command_line(p) for p in left]


def _search(cluster: Cluster, url: str, budget: str) -> list[str]:
    return [sys.executable, "-m", "tests.search.fake_cli", "--task", STUDY, "--budget", budget,
            "--workers", "2", "--address", cluster.address, "--storage", url,
            "--search-space", str(SPACES / "tiny.yaml"), "--validation", "holdout"]


def _records(url: str) -> list[TrialRecord]:
    return [TrialRecord.from_frozen(t) for t in optuna.load_study(study_name=STUDY, storage=url).trials]


def _check_budget(url: str, budget: float, records: list[TrialRecord]) -> None:
    """Every trial's device time is charged once: the study's total is their sum, and the
    search overran its budget by at most the longest trial."""
    spent = optuna.load_study(study_name=STUDY, storage=url).user_attrs["device_seconds_spent"]
    assert spent == pytest.approx(sum(r.result.device_seconds for r in records))
    assert 0 < spent <= budget + max(r.result.device_seconds for r in records)


def test_a_search_through_two_nodes_runs_trials_on_both_and_brings_the_winners_home(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    # a driver that sends no token (RAY_AUTH_MODE unset) is refused with one line (after one
    # connection attempt instead of Ray's twenty)
    tokenless = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}
    refused = subprocess.run(_search(cluster, url, "12s"), cwd=tmp_path, timeout=120,
                             env=tokenless | {"RAY_gcs_server_port_wait_time_s": "1"},
                             capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "refused this driver's token" in refused.stderr.strip().splitlines()[-1]

    done = subprocess.run(_search(cluster, url, "12s"), cwd=tmp_path, env=cluster.env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    records = _records(url)
    assert {r.state for r in records} <= {TrialState.COMPLETE, TrialState.PRUNED}
    nodes = {r.result.node.ray_node for r in records if r.result.node is not None}
    assert nodes == {cluster.node_id("head"), cluster.node_id("node2")}
    full = [r for r in records if r.plan.stage == Stage.FULL]
    assert full
    for record in full:  # trained on either node, saved in the driver's study folder
        model = Path(record.result.model_dir or "")
        assert model.parent == study_folder(url, STUDY) / "winners"
        assert json.loads((model / "meta.json").read_text()) == {"trial": record.number}
    _check_budget(url, 12.0, records)


def _running_trials(db: Path) -> set[int]:
    """Numbers of the study's RUNNING trials, read without writing (the driver writes)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT number FROM trials WHERE state = 'RUNNING'").fetchall()
    return {int(number) for (number,) in rows}


def test_a_node_dying_mid_trial_fails_that_trial_and_the_search_finishes_on_the_head(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    head, node2 = cluster.node_id("head"), cluster.node_id("node2")
    with open(tmp_path / "driver.out", "w") as out:
        driver = subprocess.Popen(_search(cluster, url, "16s"), cwd=tmp_path, env=cluster.env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        worker = _wait_for(lambda: next(
            (p for p in cluster.processes("node2")
             if ray_processes.command_line(p).startswith("ray::_execute_in_worker")), None),
            120, "no trial ever ran on the second node")
        os.kill(worker, signal.SIGSTOP)  # frozen mid-trial: it cannot finish before its node dies
        assert ray_processes.command_line(worker).startswith("ray::_execute_in_worker")
        running = _running_trials(tmp_path / "study.db")
        died_at = dt.datetime.now()
        assert not ray_processes.kill(cluster.processes("node2"))  # the machine is gone
        assert driver.wait(timeout=240) == 0, (tmp_path / "driver.out").read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)

    records = _records(url)
    (dead,) = [r for r in records if r.state == TrialState.FAIL]
    assert dead.number in running and dead.result.node is None  # no worker reported back
    assert (dead.result.error or "").startswith("NodeDiedError") and node2 in (dead.result.error or "")
    assert dead.result.device_seconds > 0  # the time it used is charged
    assert {r.state for r in records} <= {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL}
    later = [r for r in records if r.started is not None and r.started > died_at and r.result.node]
    assert later and {r.result.node.ray_node for r in later if r.result.node} == {head}
    _check_budget(url, 16.0, records)
