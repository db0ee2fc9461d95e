"""psweep-push: rsync `calc/` to the same path under your home folder on a remote host."""

from __future__ import annotations

import os
import shlex
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

PROG = "psweep-push"
EXCLUDE_FILE = "excl_push"


def make_commands(host: str, extra: Sequence[str]) -> list[list[str]]:
    """`ssh HOST mkdir -pv BASE/calc` (works whether the remote calc is a folder or a link to
    one), then the rsync of calc/ into it."""
    target = f"{remote_base(current_dir(), os.environ.get('HOME'))}/{CALC_DIR}"
    return [
        ["ssh", host, f"mkdir -pv {shlex.quote(target)}"],
        ["rsync", *rsync_options(extra, EXCLUDE_FILE), f"{CALC_DIR}/", f"{host}:{target}/"],
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser(
        PROG,
        "calc/ to",
        "./calc to hpc.machine.edu:path/to/my_study/calc (that is, under the remote home)",
        EXCLUDE_FILE,
    )
    args = parse_args(parser, argv)
    return run_commands(PROG, make_commands(args.host, args.rsync_opts))


if __name__ == "__main__":
    sys.exit(main())
