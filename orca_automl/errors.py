"""Errors the user can act on.

`OrcaInputError` marks bad input (a task, file, budget, config, search space or storage URL
that cannot be used). The CLI prints its message as one line and exits with code 2; every
other exception is an internal failure (exit code 1).
"""

from __future__ import annotations


class OrcaInputError(ValueError):
    """Bad input: the message names what is wrong and how to fix it."""


class OrcaStorageLost(RuntimeError):
    """The study's database went away mid-search for longer than the driver waits for it: the
    study keeps every finished trial, and the same command resumes it. The CLI prints the
    message as one line and exits with code 1."""


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a search, and the study was put in order first (its running trials
    marked interrupted, its driver finished): the message says what was kept and how to
    resume. The CLI prints it as one line and exits with code 130, like any interrupt."""
