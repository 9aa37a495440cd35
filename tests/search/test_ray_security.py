"""The Ray a local search starts: it listens on 127.0.0.1 only, and refuses a client without
the token it was started with; the token lives in the run's Ray folder, never in the home
folder, and goes with the cluster.

Started by the search's own `ray_execution`, with the fake runner.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from orca_automl.config import OrcaConfig, Stage
from orca_automl.search import ExecutionPlan, TrialRequest
from orca_automl.search._executor import TOKEN_FILE, TOKEN_PATH_VARIABLE, ray_execution
from tests.search import ray_processes
from tests.search.fakes import FakeRunner, FakeTask

pytestmark = pytest.mark.integration
MARK = "ORCA_TEST_RAY_RUN"

#: One GCS call (list the nodes) from a fresh process, with the token its environment gives.
PROBE = """
import sys
from ray._raylet import GcsClient
try:
    print("answered", len(GcsClient(address=sys.argv[1], cluster_id=sys.argv[2]).get_all_node_info(timeout=10)))
except Exception as exc:
    print("refused", type(exc).__name__, exc)
"""


def _probe(gcs: str, cluster: str, **auth: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | auth
    done = subprocess.run([sys.executable, "-c", PROBE, gcs, cluster], env=env, timeout=60,
                          capture_output=True, text=True)
    return done.stdout.strip()


def test_the_local_ray_listens_on_loopback_only_and_refuses_clients_without_its_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK, mark)  # inherited by every process the local Ray starts
    home_token = Path.home() / ".ray" / "auth_token"
    had_home_token = home_token.exists()
    token_path_before = os.environ.get(TOKEN_PATH_VARIABLE)
    folder = tmp_path / "ray"
    plan = ExecutionPlan(workers=1, gpus_per_trial=0.0, device_share=1.0, address=None,
                         temp_dir=folder)
    with ray_execution(plan, FakeRunner(real_sleep=0.0), FakeTask()) as executor:
        executor.submit(TrialRequest(0, Stage.SHORT, OrcaConfig()))
        outcomes = []
        while not outcomes:
            outcomes = executor.wait(60)
        (outcome,) = outcomes
        assert outcome.result.error is None
        assert outcome.result.node is not None and outcome.result.node.ip == "127.0.0.1"

        pids = ray_processes.marked(MARK, mark) | {os.getpid()}  # the driver listens too
        sockets = ray_processes.listening(pids)
        assert {"gcs_server", "raylet"} <= {Path(command).name for command, _, _ in sockets}
        # every server, the GCS, raylet, workers, agents and this driver, answers here only
        assert all(address == "127.0.0.1" for _, address, _ in sockets), sockets

        token = folder / TOKEN_FILE
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert Path(os.environ[TOKEN_PATH_VARIABLE]).resolve() == token.resolve()
        gcs = ray.get_runtime_context().gcs_address
        cluster = ray._private.worker._global_node.cluster_id.hex()
        assert _probe(gcs, cluster, RAY_AUTH_MODE="token",
                      RAY_AUTH_TOKEN_PATH=str(token)) == "answered 1"
        for refused in (_probe(gcs, cluster, RAY_AUTH_MODE="disabled"),  # sends no token
                        _probe(gcs, cluster, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)):
            assert refused.startswith("refused AuthenticationError"), refused
            assert "Authentication token is missing or incorrect" in refused

    assert not token.exists()  # the token goes with its cluster
    assert os.environ.get(TOKEN_PATH_VARIABLE) == token_path_before
    assert home_token.exists() == had_home_token  # nothing written to the home folder
    deadline = time.monotonic() + 15
    while (left := {p for p in ray_processes.marked(MARK, mark) if ray_processes.alive(p)}):
        assert time.monotonic() < deadline, [ray_processes.command_line(p) for p in left]
        time.sleep(0.2)
