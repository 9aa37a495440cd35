"""What the console commands share: the exit-code contract, one-line usage errors, `--set`
overrides and `--plugin` modules.

Every command turns `OrcaInputError` into one line on stderr and exit code 2; Ctrl-C into one
line and exit code 130; any other failure is exit code 1 with the traceback shown only under
--debug. Whatever they print of an error (usage errors, which echo arguments, and tracebacks
included) has the passwords of URLs masked.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import yaml

from orca_automl.errors import OrcaInputError, OrcaStorageLost, SearchInterrupted
from orca_automl.search._storage import mask_passwords


def one_line(text: str) -> str:
    """An error message as one line with URL passwords masked: what the commands print."""
    return mask_passwords(" ".join(part.strip() for part in text.splitlines() if part.strip()))


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def run_command(name: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command body with the project's exit-code contract."""
    try:
        import_plugins(getattr(args, "plugin", None) or ())
        return body(args)
    except OrcaInputError as exc:
        print(f"{name}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OrcaStorageLost as exc:
        print(f"{name}: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        detail = f": {one_line(str(exc))}" if isinstance(exc, SearchInterrupted) else ""
        print(f"{name}: interrupted{detail}", file=sys.stderr)
        return 130
    except Exception as exc:  # internal failure: exit 1
        if getattr(args, "debug", False):
            print(mask_passwords(traceback.format_exc()), end="", file=sys.stderr)
        else:
            print(f"{name}: internal error: {type(exc).__name__}: {one_line(str(exc))} "
                  "(rerun with --debug)", file=sys.stderr)
        return 1


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="MODULE",
        help="import this Python module first, so the backbones, embedders, distances, heads "
             "or tasks it registers can be named (repeatable), e.g. --plugin my_lab.orca_parts",
    )


def import_plugins(modules: Sequence[str]) -> None:
    """Import the user's plugin modules (their registrations run on import)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise OrcaInputError(
                f"--plugin {module}: cannot import it ({exc}): give an importable module name "
                "(is its folder on PYTHONPATH?)"
            ) from None


def parse_override(text: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: the value read as YAML (numbers, true/false, lists, mappings)."""
    if "=" not in text:
        raise OrcaInputError(f"--set {text!r}: write KEY=VALUE, e.g. --set refine.lr=3e-4")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise OrcaInputError(f"--set {text!r}: the value is not valid YAML; quote text values, "
                             "e.g. --set 'model.backbone_args={name_or_path: roberta-base}'") from None
