"""`--address`: a Ray cluster's address checked before anything waits on it.

Ray, given an address where nothing listens, retries for minutes and prints its own retry
lines; the search instead parses the address as Ray reads it and opens one TCP connection
with a short timeout, so a cluster that is not there is one line within seconds.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from orca_automl.errors import OrcaInputError

#: Seconds `check_cluster_address` waits for a cluster's address to answer.
CONNECT_TIMEOUT = 5.0

#: What `--address` takes, for the one-line errors.
_ADDRESS_FORMS = ("give ray://HOST:PORT (a Ray Client server, port 10001 by default), HOST:PORT "
                  "(the cluster's GCS, port 6379 by default) or auto (the cluster `ray start` "
                  "started on this machine), or leave --address out to start Ray here")

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
