"""Finding, inspecting and stopping the Ray processes a test started, and only those.

A test marks what it starts with an environment variable of its own (Ray's processes inherit
their starter's environment, workers included), so they are told apart from every other Ray on
the machine without a bare `ray stop`, which would end them all. Read from /proc (Linux).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def marked(name: str, value: str) -> set[int]:
    """Processes whose environment holds name=value."""
    wanted = f"{name}={value}".encode()
    found = set()
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
    return found


def command_line(pid: int) -> str:
    """A process's command line (Ray workers rewrite theirs: `ray::IDLE`, `ray::<task>`)."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def listening(pids: set[int]) -> list[tuple[str, str, int]]:
    """(command, address, port) of every TCP socket that `pids` listen on."""
    owners: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        owners[target[8:-1]] = pid
    found = []
    for table in ("tcp", "tcp6"):
        lines = (PROC / "net" / table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in owners:  # 0A: LISTEN
                address, port = local.split(":")
                found.append((command_line(owners[inode]).split(" ")[0], _address(address),
                              int(port, 16)))
    return found


def _address(hexed: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (32-bit words in host byte order)."""
    raw = bytes.fromhex(hexed)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def stop(pids: set[int], grace: float = 10.0,
         signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGKILL)) -> set[int]:
    """SIGTERM `pids`, SIGKILL what is left after `grace` seconds; returns any still alive
    5 seconds after that."""
    for sig in signals:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (5.0 if sig == signal.SIGKILL else grace)
        while time.monotonic() < deadline and (pids := {p for p in pids if alive(p)}):
            time.sleep(0.1)
    return {p for p in pids if alive(p)}


def stop_node(pids: set[int], grace: float = 10.0) -> set[int]:
    """Stop a node's processes in the order `ray stop` does: its raylet, then its other
    processes, its GCS last (others exit uncleanly without it; all at once, the raylet and GCS
    hang on to each other past any grace); returns any still alive."""
    def order(pid: int) -> int:
        name = Path(command_line(pid).split(" ")[0]).name
        return 0 if name == "raylet" else 2 if name == "gcs_server" else 1

    left: set[int] = set()
    for bucket in range(3):
        left |= stop({p for p in pids if order(p) == bucket}, grace / 3)
    return left


def kill(pids: set[int]) -> set[int]:
    """SIGKILL `pids` at once, as a machine that dies takes them; returns any still alive
    after 5 seconds."""
    return stop(pids, grace=0.0, signals=(signal.SIGKILL,))


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
