"""The console faces: `orca-train`, `orca-predict`, `orca-search` and `orca-report`.

The only part of the package that parses arguments or prints. Each command turns bad input
(`OrcaInputError`) into one line and exit code 2, and other failures into exit code 1.
"""

from orca_automl.cli._common import OneLineParser, import_plugins, parse_override, run_command
from orca_automl.cli._predict import predict_main, predict_parser, read_inputs
from orca_automl.cli._progress import Progress, describe_trial, progress_line, winners_table
from orca_automl.cli._report import describe_report, report_command, report_main, report_parser
from orca_automl.cli._search import build_parser, options_from_args, search_command, search_main
from orca_automl.cli._train import train_main, train_parser

__all__ = [
    "OneLineParser",
    "Progress",
    "build_parser",
    "describe_trial",
    "import_plugins",
    "options_from_args",
    "parse_override",
    "predict_main",
    "predict_parser",
    "progress_line",
    "read_inputs",
    "describe_report",
    "report_command",
    "report_main",
    "report_parser",
    "run_command",
    "search_command",
    "search_main",
    "train_main",
    "train_parser",
    "winners_table",
]
