"""The study report: what a search found, as one offline HTML page, PNG copies of its figures
and a Markdown summary, and the same figures registered in optuna-dashboard.

Example:
    >>> from orca_automl.report import register_dashboard, write_report
    >>> report = write_report("sqlite:///studies/gunpoint.db", "gunpoint")  # doctest: +SKIP
    >>> register_dashboard("sqlite:///studies/gunpoint.db", "gunpoint", report)  # doctest: +SKIP
    >>> report.html                              # doctest: +SKIP
    PosixPath('studies/gunpoint/report/report.html')
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.storages import RDBStorage
from sqlalchemy.engine import make_url

from orca_automl.errors import OrcaInputError
from orca_automl.inputs import unwritable_ancestor
from orca_automl.report._facts import LeaderRow, StudyFacts, read_study
from orca_automl.report._figures import FIGURES, FigureSpec, Missing, figure
from orca_automl.report._page import leaderboard_markdown, markdown, page, summary_lines
from orca_automl.report._png import save_png
from orca_automl.search import redact_url, study_folder

#: The height of optuna-dashboard's cards for user-defined plots (0.21), in pixels.
DASHBOARD_HEIGHT = 450
#: The file in every report folder that says whose report it is and which files it wrote, so
#: that a rewrite replaces only a folder of its own (JSON: study, storage, files).
REPORT_MARKER = ".orca-report.json"
#: What a report folder written before the marker existed holds (the default folder only).
_LEGACY_NAMES = ("report.html", "report.md")
_MARKER_MAX_BYTES = 64 * 1024
_ACCEPTED = ("give a path that does not exist yet, an empty folder, or a folder holding only an "
             "earlier report of this study")


@dataclass(frozen=True)
class Report:
    """A written report: its folder, documents, the PNG of each drawn figure, the drawn
    figures' names in page order, and why each other figure was not drawn."""

    folder: Path
    html: Path
    markdown: Path
    pngs: dict[str, Path]
    figures: tuple[str, ...]
    missing: dict[str, str]
    plots: Mapping[str, go.Figure] = field(repr=False, compare=False)
    note: str = field(repr=False, compare=False, default="")


def default_folder(storage: str, study_name: str) -> Path:
    """`<study folder>/report`: next to an SQLite file, else ./studies/<study>/report."""
    return study_folder(storage, study_name) / "report"


def write_report(storage: str, study_name: str, folder: Path | None = None) -> Report:
    """Read the study and write its report into `folder` (default `default_folder`).

    The folder must not exist yet (it is made, parents too), be empty, or hold nothing but an
    earlier report of the same study and storage (as its `REPORT_MARKER` says; the default
    folder is also taken when it holds only report.html, report.md and PNGs, as reports
    written before the marker did). Anything else (a file, a symbolic link, a folder of other
    files, the working folder or one above it) is refused with `OrcaInputError` before anything
    is read or written. The files are written into a private folder beside it and swapped in,
    so an interrupted write leaves the previous report intact.
    """
    given = Path(folder) if folder is not None else default_folder(storage, study_name)
    target = _check_folder(given, storage, study_name)
    facts = read_study(storage, study_name)
    built = {name: spec.build(facts) for name, spec in FIGURES.items()}
    drawn = {name: fig for name, fig in built.items() if not isinstance(fig, Missing)}
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        staging = work / "new"
        staging.mkdir()  # not the private mkdtemp folder itself: the report keeps the umask's mode
        for name, fig in drawn.items():
            save_png(fig, staging / f"{name}.png")
        (staging / "report.html").write_text(page(facts, built), encoding="utf-8")
        (staging / "report.md").write_text(
            markdown(facts, built, {name: f"{name}.png" for name in drawn}), encoding="utf-8")
        _write_marker(staging, storage, study_name)
        _check_folder(given, storage, study_name)  # still ours to replace, just before
        _swap_in(staging, target, work / "old")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Report(
        folder=given, html=given / "report.html", markdown=given / "report.md",
        pngs={name: given / f"{name}.png" for name in drawn}, figures=tuple(drawn),
        missing={name: fig.reason for name, fig in built.items() if isinstance(fig, Missing)},
        plots=drawn, note=dashboard_note(facts),
    )


def _swap_in(staging: Path, target: Path, old: Path) -> None:
    """Put `staging` in `target`'s place, the previous `target` moved to `old` (put back if
    the swap fails halfway)."""
    if target.exists():
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        raise


def _storage_identity(storage: str) -> str:
    """Which database a storage URL names, as a report's marker records it: an SQLite file's
    absolute path; otherwise the URL with its password hidden (`redact_url`) and its driver
    left out (postgresql+psycopg:// and postgresql:// name the same database)."""
    if storage.strip().partition("://")[0].partition("+")[0].lower() == "sqlite":
        database = make_url(storage).database
        if database:
            return str(Path(database).resolve())
    scheme, sep, rest = redact_url(storage).partition("://")
    return scheme.partition("+")[0] + sep + rest


def _write_marker(folder: Path, storage: str, study_name: str) -> Path:
    """Write `REPORT_MARKER` into a report folder: the study, the storage's identity and the
    files the folder holds (every file in it but the marker)."""
    files = sorted(p.name for p in folder.iterdir() if p.name != REPORT_MARKER)
    marker = folder / REPORT_MARKER
    marker.write_text(json.dumps({"study": study_name, "storage": _storage_identity(storage),
                                  "files": files}, indent=1) + "\n", encoding="utf-8")
    return marker


def _check_folder(folder: Path, storage: str, study_name: str) -> Path:
    """The report folder `folder` located (`_located`), or `OrcaInputError` when a report must
    not replace what it holds; reads only the folder's listing and its marker."""
    where = f"report folder {str(folder)!r}"
    target = _located(folder)
    cwd = Path.cwd().resolve()
    if target.is_symlink():
        raise OrcaInputError(f"{where} is a symbolic link: {_ACCEPTED}")
    if target == cwd or target in cwd.parents:
        raise OrcaInputError(f"{where} is or holds the working folder ({cwd}), whose files a "
                             f"report would replace: {_ACCEPTED}, e.g. ./report")
    if not target.exists():
        ancestor = unwritable_ancestor(target)
        if ancestor is not None:
            raise OrcaInputError(f"{where} cannot be made: {ancestor} is not a writable folder")
        return target
    if not target.is_dir():
        raise OrcaInputError(f"{where} is a file, not a folder: {_ACCEPTED}")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise OrcaInputError(f"{where} cannot be replaced: {target.parent} is not a writable folder")
    try:
        with os.scandir(target) as listing:
            entries = {e.name: e.is_file(follow_symlinks=False) for e in listing}
    except OSError as exc:
        raise OrcaInputError(f"{where} cannot be read ({exc.strerror}): {_ACCEPTED}") from None
    if not entries:
        return target
    if REPORT_MARKER in entries:
        study, identity, ours = _read_marker(target / REPORT_MARKER, where)
        if study != study_name or identity != _storage_identity(storage):
            raise OrcaInputError(f"{where} holds the report of another study or storage (study "
                                 f"{study[:128]!r}): {_ACCEPTED}")
        ours = ours | {REPORT_MARKER}
    else:  # a report of an older orca-automl, without marker: replaced in the default folder only
        ours = {n for n, regular in entries.items()
                if regular and (n in _LEGACY_NAMES or n.endswith(".png"))}
        whole = set(_LEGACY_NAMES) <= ours  # such a report always wrote both
        if ours == set(entries) and not (
                whole and target == _located(default_folder(storage, study_name))):
            raise OrcaInputError(f"{where} holds files without a report marker ({_named(ours)}): "
                                 "an older orca-automl's report is replaced only in the default "
                                 f"folder; move these files away or {_ACCEPTED}")
    foreign = {n for n, regular in entries.items() if n not in ours or not regular}
    if foreign:
        raise OrcaInputError(f"{where} holds what is not a report of study {study_name!r} "
                             f"({_named(foreign)}), which the report would delete: {_ACCEPTED}")
    return target


def _named(names: set[str]) -> str:
    """The first three of `names`, in order, quoted."""
    first = sorted(names)
    return ", ".join(repr(n) for n in first[:3]) + (", ..." if len(first) > 3 else "")


def _read_marker(path: Path, where: str) -> tuple[str, str, set[str]]:
    """The study, storage identity and files a report folder's marker records."""
    bad = OrcaInputError(f"{where} has a {REPORT_MARKER} that is not a valid orca-report marker: "
                         "give another folder, or empty this one if its files are not needed")
    if not path.is_file() or path.is_symlink() or path.stat().st_size > _MARKER_MAX_BYTES:
        raise bad
    try:
        marker = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        raise bad from None
    if not isinstance(marker, dict) or set(marker) != {"study", "storage", "files"}:
        raise bad
    study, identity, files = marker["study"], marker["storage"], marker["files"]
    if not (isinstance(study, str) and isinstance(identity, str) and isinstance(files, list)
            and all(isinstance(f, str) and _plain_name(f) for f in files)):
        raise bad
    return study, identity, set(files)


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..", REPORT_MARKER) and "/" not in name and os.sep not in name


def _located(folder: Path) -> Path:
    """`folder` made absolute with its parent's symbolic links resolved (the folder itself is
    kept as named, so that a link is seen as one)."""
    if folder.name in ("", ".."):
        return folder.resolve()
    return folder.parent.resolve() / folder.name


def dashboard_note(facts: StudyFacts) -> str:
    """The study's note in optuna-dashboard: the summary and the leaderboard."""
    return "\n\n".join(["## orca-automl report", *summary_lines(facts), "### Leaderboard",
                        leaderboard_markdown(facts)])


def register_dashboard(storage: str, study_name: str, report: Report) -> None:
    """Show the report's figures and leaderboard in optuna-dashboard, through its API for
    user-defined plots and notes (each figure under the id `orca-<name>`, so a new report
    replaces the previous one's; the note is written only when it changed)."""
    from optuna_dashboard import get_note, save_note, save_plotly_graph_object

    rdb = RDBStorage(storage, skip_table_creation=True)
    try:
        study = optuna.load_study(study_name=study_name, storage=rdb)
        for name, fig in report.plots.items():  # the dashboard's cards are 450 px high
            card = go.Figure(fig).update_layout(width=None, height=DASHBOARD_HEIGHT, autosize=True,
                                                legend={"orientation": "v", "y": 1, "x": 1.02})
            save_plotly_graph_object(study, card, graph_object_id=f"orca-{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            current = get_note(study)
        if report.note and report.note != current:
            save_note(study, report.note)
    finally:
        rdb.engine.dispose()


__all__ = [
    "FIGURES",
    "REPORT_MARKER",
    "FigureSpec",
    "LeaderRow",
    "Missing",
    "Report",
    "StudyFacts",
    "default_folder",
    "figure",
    "read_study",
    "register_dashboard",
    "write_report",
]
