"""The `run` command: `run [-y params.yaml] [-o output] ...` or `run SUBCOMMAND ...`.

Each subcommand lives in its own module of this package with a `main(argv) -> int`; it is imported
only when named, so `run --help` stays fast. This package is the only place that prints, exits or
configures logging; the library below it raises `RunnerError`s and returns results.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from runner.cli.subcommands import SUBCOMMANDS


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `run` console script and of `python -m runner`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[args[0]][0])
        return module.main(args[1:])
    if args and not args[0].startswith("-"):  # `run` alone takes only options: a typo?
        from runner.errors import did_you_mean

        hint = did_you_mean(args[0], SUBCOMMANDS)
        if hint:
            from runner.cli.common import EXIT_USAGE, print_error

            print_error(f"unknown command '{args[0]}'{hint}")
            return EXIT_USAGE
    from runner.cli import yaml_run

    return yaml_run.main(args)
