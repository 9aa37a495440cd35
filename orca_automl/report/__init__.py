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

import os
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import plotly.graph_objects as go
from optuna.storages import RDBStorage

from orca_automl.report._facts import LeaderRow, StudyFacts, read_study
from orca_automl.report._figures import FIGURES, FigureSpec, Missing, figure
from orca_automl.report._page import leaderboard_markdown, markdown, page, summary_lines
from orca_automl.report._png import save_png
from orca_automl.search import study_folder

#: The height of optuna-dashboard's cards for user-defined plots (0.21), in pixels.
DASHBOARD_HEIGHT = 450


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

    The folder is replaced as a whole: the files are written into a temporary folder beside
    it and swapped in, so an interrupted write leaves the previous report intact.
    """
    facts = read_study(storage, study_name)
    folder = Path(folder) if folder is not None else default_folder(storage, study_name)
    built = {name: spec.build(facts) for name, spec in FIGURES.items()}
    drawn = {name: fig for name, fig in built.items() if not isinstance(fig, Missing)}
    staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name, fig in drawn.items():
            save_png(fig, staging / f"{name}.png")
        (staging / "report.html").write_text(page(facts, built), encoding="utf-8")
        (staging / "report.md").write_text(
            markdown(facts, built, {name: f"{name}.png" for name in drawn}), encoding="utf-8")
        _swap_in(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Report(
        folder=folder, html=folder / "report.html", markdown=folder / "report.md",
        pngs={name: folder / f"{name}.png" for name in drawn}, figures=tuple(drawn),
        missing={name: fig.reason for name, fig in built.items() if isinstance(fig, Missing)},
        plots=drawn, note=dashboard_note(facts),
    )


def _swap_in(staging: Path, folder: Path) -> None:
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


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
