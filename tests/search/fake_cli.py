"""`orca-search` wired to the fake runner (sleeping for real) and fake tasks.

Run as `python -m tests.search.fake_cli ARGS` from the repository root: the SIGKILL test
drives the real command, Ray and database through it, without model training. It writes no
report unless given `--with-report`.
"""

from __future__ import annotations

import sys

from orca_automl.cli import build_parser, run_command, search_command
from tests.search.fakes import FakeRunner, fake_toolkit

#: Real seconds slept per simulated second: a short trial of the tiny space takes about 1 s.
REAL_SLEEP = 0.3


def main() -> int:
    argv = sys.argv[1:]
    if "--with-report" in argv:  # the report costs seconds a search test rarely needs
        argv.remove("--with-report")
    elif "--no-report" not in argv:
        argv.append("--no-report")
    args = build_parser().parse_args(argv)
    toolkit = fake_toolkit(FakeRunner(real_sleep=REAL_SLEEP))
    return run_command("orca-search", lambda a: search_command(a, toolkit=toolkit), args)


if __name__ == "__main__":
    sys.exit(main())
