"""psweep-pull: rsync `calc/` from the same path under your home folder on a remote host."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from runner.sweep.scripts.rsync import (
    CALC_DIR,
    current_dir,
    make_parser,
    parse_args,
    remote_base,
    rsync_options,
    run_commands,
)

PROG = "psweep-pull"
EXCLUDE_FILE = "excl_pull"


def make_commands(host: str, extra: Sequence[str]) -> list[list[str]]:
    base = remote_base(current_dir(), os.environ.get("HOME"))
    source = f"{host}:{base}/{CALC_DIR}"
    return [["rsync", *rsync_options(extra, EXCLUDE_FILE), source, "./"]]


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(
        PROG,
        "calc/ from",
        "hpc.machine.edu:path/to/my_study/calc (that is, under the remote home) to ./calc",
        EXCLUDE_FILE,
    )
    args = parse_args(parser, argv)
    return run_commands(PROG, make_commands(args.host, args.rsync_opts))


if __name__ == "__main__":
    sys.exit(main())
