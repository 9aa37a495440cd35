"""`orca-report`: a study's report (an offline HTML page, PNG figures, a Markdown summary),
and the same figures and leaderboard registered in optuna-dashboard.

`orca-search` writes it at the end of every session; this command rewrites it for any study,
e.g. one a search on another machine left in a shared database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from orca_automl.cli._common import OneLineParser, run_command
from orca_automl.search import check_storage_url, check_study_name, default_storage_url

if TYPE_CHECKING:  # plotly and matplotlib load only when a report is written
    from orca_automl.report import Report

DESCRIPTION = """\
Write the report of a study made by orca-search: the leaderboard (promoted configurations,
ensembles and baselines with validation and test scores, inference cost, device time and the
decision behind each), the Pareto front, the best score against the budget spent, the
alignment evidence behind pruning, alignment and refine curves of the top trials, parameter
importances and where the budget went. One self-contained HTML page (opens offline), a PNG of
each figure and a Markdown summary; the figures and the leaderboard are also registered with
the study, so optuna-dashboard shows them."""

EPILOG = """\
examples:
  orca-report --study gunpoint                      # studies/gunpoint.db -> studies/gunpoint/report/
  orca-report --study gunpoint --out /tmp/gunpoint-report
  orca-report --storage postgresql://me@dbhost/orca --study gunpoint-wide --no-dashboard

exit codes: 0 written, 2 bad input (no such study or storage, an --out that is not a new or
empty folder or this study's report), 1 internal failure."""


def report_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="orca-report", description=DESCRIPTION, epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True, metavar="NAME",
                   help="the study's name (orca-search's --study, by default its task's name), "
                        "e.g. --study gunpoint")
    p.add_argument("--storage", metavar="URL",
                   help="SQLAlchemy URL of the study database (default: "
                        "sqlite:///studies/<study>.db), e.g. --storage postgresql://me@dbhost/orca")
    p.add_argument("--out", metavar="DIR", type=Path,
                   help="folder to write the report into: a new one (made, parents too), an "
                        "empty one, or one holding only an earlier report of this study, which "
                        "the new report replaces; anything else (a file, a link, a folder of "
                        "other files, the working folder) is refused and left as it is "
                        "(default: <study folder>/report, e.g. studies/gunpoint/report), "
                        "e.g. --out report/")
    p.add_argument("--no-dashboard", action="store_true",
                   help="do not register the figures and leaderboard with the study for "
                        "optuna-dashboard (the report then writes nothing to the database)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def report_main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `orca-report`."""
    args = report_parser().parse_args(argv)
    return run_command("orca-report", report_command, args)


def report_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from orca_automl.report import register_dashboard, write_report

    out = out or sys.stdout
    check_study_name(args.study)
    storage = check_storage_url(args.storage or default_storage_url(args.study))
    report = write_report(storage, args.study, args.out)
    if not args.no_dashboard:
        register_dashboard(storage, args.study, report)
    print(describe_report(report, dashboard=not args.no_dashboard), file=out)
    return 0


def describe_report(report: Report, dashboard: bool) -> str:
    """Where the report is, in two lines."""
    drawn = f"{len(report.figures)} figures"
    if report.missing:
        drawn += f" ({len(report.missing)} not drawn: {', '.join(report.missing)})"
    where = " and in optuna-dashboard" if dashboard else ""
    return f"report: {report.html}\n  {drawn}, PNGs and report.md in {report.folder}{where}"
