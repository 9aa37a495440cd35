"""What the console commands share: the exit-code contract, one-line usage errors, `--set`
overrides and `--plugin` modules.

Every command turns `OrcaInputError` into one line on stderr and exit code 2; Ctrl-C into one
line and exit code 130; any other failure is exit code 1 with the traceback shown only under
--debug. Every password on the command line is remembered when it is parsed and masked in
whatever the command prints (its output streams are masked as a whole); a usage error never
echoes the values it did not understand.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TextIO

from orca_automl.credentials import mask, remember
from orca_automl.errors import OrcaInputError, OrcaStorageLost, SearchInterrupted
from orca_automl.inputs import load_yaml

#: argparse's message for arguments no option took: it would echo them, passwords included.
_UNRECOGNIZED = "unrecognized arguments: "
#: A plugin is named as Python imports it: dotted identifiers, never a path.
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def one_line(text: str) -> str:
    """An error message as one line with passwords masked: what the commands print."""
    return mask(" ".join(part.strip() for part in text.splitlines() if part.strip()))


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line, like every other bad input; the passwords of the command
    line are remembered before anything is parsed, so no message can show them."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None,
    ) -> tuple[argparse.Namespace, list[str]]:
        remember(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        if message.startswith(_UNRECOGNIZED):
            message = _unrecognized(message.removeprefix(_UNRECOGNIZED))
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def _unrecognized(extras: str) -> str:
    """Name the options no flag took, never the values (a misspelt --storage's URL)."""
    flags = [token.split("=", 1)[0] for token in extras.split() if token.startswith("-")]
    if flags:
        return f"unrecognized arguments: {' '.join(dict.fromkeys(flags))}"
    return ("unrecognized arguments: a value that no option takes (not shown; did it lose "
            "its --option?)")


class _MaskedStream:
    """A text stream that masks remembered passwords in everything written to it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(mask(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _masked_output() -> Iterator[None]:
    """stdout and stderr masked for the command's duration (print, warnings, tracebacks)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _MaskedStream(out), _MaskedStream(err)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def run_command(name: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command body with the project's exit-code contract."""
    with _masked_output():
        return _run(name, body, args)


def _run(name: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        import_plugins(getattr(args, "plugin", None) or ())
        return body(args)
    except OrcaInputError as exc:
        print(f"{name}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OrcaStorageLost as exc:
        print(f"{name}: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:  # only a path the user typed can be too long
            return _internal(name, exc, args)
        where = str(exc.filename or "")
        print(f"{name}: error: a path is too long for the file system "
              f"({one_line(where[:60])}...): give a shorter one", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        detail = f": {one_line(str(exc))}" if isinstance(exc, SearchInterrupted) else ""
        print(f"{name}: interrupted{detail}", file=sys.stderr)
        return 130
    except Exception as exc:  # internal failure: exit 1
        return _internal(name, exc, args)


def _internal(name: str, exc: Exception, args: argparse.Namespace) -> int:
    """An internal failure: exit 1, the traceback under --debug."""
    if getattr(args, "debug", False):
        print(mask(traceback.format_exc()), end="", file=sys.stderr)
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
    """Import the user's plugin modules (their registrations run on import); a plugin that
    fails to import, for whatever reason, is one line naming it and its error."""
    for module in modules:
        if not _MODULE_NAME.fullmatch(module):
            raise OrcaInputError(
                f"--plugin {module!r} is not a module name: give a dotted Python module name, "
                "e.g. --plugin my_lab.orca_parts (its folder on PYTHONPATH), not a path"
            )
        try:
            importlib.import_module(module)
        except (Exception, SystemExit) as exc:  # the plugin's own code failed: its error is the news
            problem = " ".join(str(exc).split()) or type(exc).__name__
            raise OrcaInputError(
                f"--plugin {module}: importing it failed ({type(exc).__name__}: {problem}): fix "
                "the module or give an importable one (is its folder on PYTHONPATH?)"
            ) from None


def parse_override(text: str) -> tuple[str, Any]:
    """`--set KEY=VALUE`: the value read as YAML (numbers, true/false, lists, mappings)."""
    if "=" not in text:
        raise OrcaInputError(f"--set {text!r}: write KEY=VALUE, e.g. --set refine.lr=3e-4")
    key, value = text.split("=", 1)
    try:
        return key.strip(), load_yaml(value, f"--set {key.strip()}")
    except OrcaInputError as exc:
        raise OrcaInputError(f"{exc}; quote text values, e.g. "
                             "--set 'model.backbone_args={name_or_path: roberta-base}'") from None
