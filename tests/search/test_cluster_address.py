"""`--address` is checked before the search takes its study's lock or asks Ray to join (Ray
retries an address where nothing answers for minutes): a malformed address, a host that does
not resolve, a port where nothing listens or that never answers are each refused at once with
one line, and an address where something listens passes.

Every address is on this machine: a listening socket of the test's own, a port nobody uses,
and a listener whose queue is full, which drops further connections unanswered, as a
non-routable address does (this sandbox answers every outside address itself, so a real
non-routable one would connect here).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orca_automl.cli import search_main
from orca_automl.errors import OrcaInputError
from orca_automl.search._cluster_address import _host_and_port, check_cluster_address


@pytest.fixture
def listening() -> Iterator[int]:
    """The port of a socket listening on 127.0.0.1 for the test's length."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


@pytest.fixture
def unused() -> int:
    """A port nothing listens on (free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unanswered() -> Iterator[int]:
    """A port whose connections go unanswered: its listener's queue is full, so the kernel
    drops new connection requests, as it would for a host that is not there."""
    with socket.socket() as server, socket.socket() as queued:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        queued.connect(server.getsockname())  # fills the queue: never accepted
        yield int(server.getsockname()[1])


@pytest.fixture
def no_local_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No cluster Ray would find with `auto`: no RAY_ADDRESS, no address recorded by `ray
    start` (Ray reads it under TMPDIR, here a fresh folder), no running one (other Rays on
    this machine are hidden). Returns the folder where `ray start` records its address."""
    from ray._private import services

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: frozenset())
    return tmp_path / "ray"


def _refusal(address: str, timeout: float = 5.0) -> str:
    with pytest.raises(OrcaInputError) as refused:
        check_cluster_address(address, timeout=timeout)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_an_address_where_something_listens_passes(
    listening: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_cluster_address(f"127.0.0.1:{listening}")
    check_cluster_address(f"localhost:{listening}")
    from ray._private import utils  # Ray Client's own dependency may be missing here

    monkeypatch.setattr(utils, "get_ray_client_dependency_error", lambda: None)
    check_cluster_address(f"ray://127.0.0.1:{listening}")


def test_a_port_where_nothing_listens_is_refused(unused: int) -> None:
    message = _refusal(f"127.0.0.1:{unused}")
    assert message.startswith(f"cannot reach the Ray cluster at --address 127.0.0.1:{unused} "
                              "(connection refused): start it with `ray start --head`")


def test_a_port_that_never_answers_is_given_up_on_after_the_timeout(unanswered: int) -> None:
    message = _refusal(f"127.0.0.1:{unanswered}", timeout=0.2)
    assert f"--address 127.0.0.1:{unanswered} (timed out after 0.2 s)" in message


def test_a_host_that_does_not_resolve_is_refused() -> None:
    message = _refusal("no-such-host.invalid:6379")
    assert "--address no-such-host.invalid:6379 (host no-such-host.invalid not found)" in message


def test_a_name_server_that_does_not_answer_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    answer = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answer.wait(10) and [])
    try:
        assert "(looking up head-node timed out after 0.2 s)" in _refusal("head-node:6379", 0.2)
    finally:
        answer.set()


def test_ray_client_without_its_dependencies_is_refused_before_connecting(
    unused: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray._private import utils

    monkeypatch.setattr(utils, "get_ray_client_dependency_error",
                        lambda: ImportError("No module named 'grpc'"))
    message = _refusal(f"ray://127.0.0.1:{unused}")
    assert "needs ray[client], which is not installed (No module named 'grpc')" in message
    assert "HOST:PORT" in message


@pytest.mark.parametrize(("address", "problem"), [
    ("head-node", "no port"),
    ("ray://head-node", "no port"),
    ("head-node:", "no port"),
    ("local", "no port"),
    ("[::1]", "no port"),
    (":6379", "no host"),
    ("ray://:10001", "no host"),
    ("head-node:x", "port 'x' is not a number"),
    ("head-node:6379/", "port '6379/' is not a number"),
    ("head-node:-1", "port '-1' is not a number"),
    ("head-node:0", "port 0 is not between 1 and 65535"),
    ("head-node:65536", "port 65536 is not between 1 and 65535"),
    ("::1:6379", "an IPv6 address goes in brackets, e.g. [::1]:6379"),
    ("http://head-node:8265", "http:// is not a Ray address"),
])
def test_a_malformed_address_is_refused_with_the_forms_it_may_take(
    address: str, problem: str
) -> None:
    message = _refusal(address)
    assert message.startswith(f"--address {address}: {problem}; give ray://HOST:PORT")
    assert message.endswith("or leave --address out to start Ray here")


@pytest.mark.parametrize(("address", "expected"), [
    ("head-node:6379", ("head-node", 6379)),
    ("ray://10.0.0.2:10001", ("10.0.0.2", 10001)),
    ("[::1]:6379", ("::1", 6379)),
    ("ray://[fe80::1]:10001", ("fe80::1", 10001)),
])
def test_addresses_are_read_as_ray_reads_them(address: str, expected: tuple[str, int]) -> None:
    assert _host_and_port(address, "--address") == expected


@given(st.text(max_size=40))
def test_any_address_is_read_or_refused_with_the_projects_error(address: str) -> None:
    try:
        host, port = _host_and_port(address, f"--address {address}")
    except OrcaInputError as exc:
        assert str(exc).startswith(f"--address {address}: ")
        return
    assert host and 0 < port < 65536


def test_auto_without_a_cluster_on_this_machine_is_refused(no_local_cluster: Path) -> None:
    assert _refusal("auto").startswith("--address auto: no Ray cluster runs on this machine")


def test_auto_checks_the_cluster_ray_would_find(
    no_local_cluster: Path, listening: int, unused: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_local_cluster.mkdir()
    (no_local_cluster / "ray_current_cluster").write_text(f"127.0.0.1:{listening}")
    check_cluster_address("auto")  # the cluster `ray start` recorded
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{unused}")  # RAY_ADDRESS comes first
    assert _refusal("auto").startswith(
        f"cannot reach the Ray cluster at --address auto (127.0.0.1:{unused}) "
        "(connection refused)")


@pytest.mark.parametrize("address", ["127.0.0.1:{unused}", "no-such-host.invalid:6379",
                                     "auto", "head-node"])
def test_orca_search_refuses_a_bad_address_with_one_line_and_writes_nothing(
    address: str, unused: int, no_local_cluster: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = search_main(["--task", "gunpoint", "--budget", "1cpu-minutes",
                        "--address", address.format(unused=unused)])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("orca-search: error: "), err
    assert out == ""
    assert list(work.iterdir()) == []  # no study, no driver lock
