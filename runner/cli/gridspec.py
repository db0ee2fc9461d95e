"""`run sweep GRIDSPEC.yml [-o RUNFILE]`: write the runfile of a parameter grid."""

from __future__ import annotations

import os
import sys
from argparse import RawDescriptionHelpFormatter
from typing import List

from runner.cli.common import EXIT_OK, ArgumentParser, command

DESCRIPTION = """\
Expand a gridspec (YAML: 'program:' and 'parameters:' with {values: [...]}, {value: x} or
{min, max, step} per parameter) into a runfile: every combination, first parameter slowest,
one command per line, e.g. 'python3 my_script.py --alpha=1 --beta=0.1'. Prints the runfile's
path, so `run launch "$(run sweep grid.yml)"` runs the sweep."""


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run sweep", description=DESCRIPTION,
                            formatter_class=RawDescriptionHelpFormatter)
    parser.add_argument("gridspec", metavar="GRIDSPEC", help="the gridspec YAML file")
    parser.add_argument("-o", "--out", "--output", metavar="RUNFILE",
                        help="where to write the runfile (default: the gridspec's path with "
                             "the extension .runfile)")
    parser.add_argument("--max-tasks", type=int, default=None, metavar="N",
                        help="refuse a grid of more than N commands (default: 1,000,000)")
    return parser


@command
def main(argv: List[str]) -> int:
    args = make_parser().parse_args(argv)
    from runner.errors import UsageError
    from runner.spec.expand import DEFAULT_MAX_TASKS
    from runner.spec.gridspec import (check_size, default_runfile_path, load_gridspec,
                                      make_runfile_text)
    from runner.store.files import write_atomic

    spec = load_gridspec(args.gridspec)
    check_size(spec, DEFAULT_MAX_TASKS if args.max_tasks is None else args.max_tasks)
    out = args.out or default_runfile_path(args.gridspec)
    if os.path.abspath(out) == os.path.abspath(args.gridspec):
        raise UsageError(f"{out}: is the gridspec itself; choose the runfile's path with -o FILE")
    if os.path.isdir(out):
        raise UsageError(f"{out}: is a directory; choose the runfile's path with -o FILE")
    directory = os.path.dirname(out) or "."
    if not os.path.isdir(directory):
        raise UsageError(f"{out}: no such directory {directory!r}; create it or choose another "
                         f"path with -o FILE")
    write_atomic(out, make_runfile_text(spec).encode("utf-8"))
    grid = " x ".join(f"{name} {len(values)}" for name, values in spec.parameters.items())
    sys.stderr.write(f"run sweep: {spec.size} command{'s' * (spec.size != 1)} "
                     f"({grid or 'no parameters'}) -> {out}\n")
    print(out)
    return EXIT_OK
