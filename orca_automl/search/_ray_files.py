"""Where a local Ray keeps its files, and what is left of them after a search.

Ray writes sockets, logs and spill files into its temp folder and opens every folder it makes
to all users (mode 0777). A local search gives it the study's own Ray folder
(`studies/<study>/ray`), or, when that path is too long for Ray's unix sockets, a private
folder in the system temp folder linked from the study's. Once Ray stops, the study's folder
keeps the logs of that run's session only, closed to other users (0700), and nothing of the
run is left in the system temp folder; what a killed run left is cleared at the next start.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

#: Ray puts unix sockets under its temp folder; their paths may not exceed 107 bytes, and
#: the session folder and socket name add about 65 more.
_MAX_RAY_TEMP_CHARS = 40

#: Name prefix of the folders made in the system temp folder for Ray's sockets, when the
#: study's Ray folder has too long a path for them (see `ray_temp_dir`).
_SCRATCH_PREFIX = "orca-ray-"

#: Ray's link to its newest session folder, in its temp folder; the study's Ray folder has one.
SESSION_LATEST = "session_latest"

_log = logging.getLogger(__name__)


def ray_temp_dir(folder: Path) -> tuple[Path, Path | None]:
    """Ray's temp folder for one run, and the folder made for it in the system temp folder
    (None: none was).

    `folder`, the study's Ray folder, is made (mode 0700). Ray's temp folder is `folder` itself
    when its path is short enough for Ray's sockets; else `<system temp>/orca-ray-XXXX/ray` in
    a folder only this user may enter (Ray opens its temp folder to everyone), which
    `folder`'s `session_latest` links to while Ray runs (and its session, see
    `show_session`): the live logs are at `<folder>/session_latest/logs` either way.
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


def show_session(folder: Path, temp_dir: Path) -> None:
    """Once Ray has started: close its temp folder to other users again (Ray opens it to
    everyone, mode 0777) and, when that is not `folder`, link its session folder from
    `folder` under the name it will be kept by (see `keep_last_session`)."""
    temp_dir.chmod(0o700)
    session = _ray_session(temp_dir)
    if temp_dir != folder and session is not None:
        link = folder / session.name
        _remove(link)
        link.symlink_to(session, target_is_directory=True)


def keep_last_session(folder: Path, temp_dir: Path, scratch: Path | None) -> None:
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


def clear_leftovers(folder: Path) -> Path:
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
    """The folder in the system temp folder that `link` points into, if `ray_temp_dir`
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
