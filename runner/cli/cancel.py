"""`run cancel -o output`: stop the SLURM jobs of an output directory's submissions.

Cancelled tasks that had started record `interrupted` in their `stat.json`; running the same
`run -y ... --backend slurm` again submits only what is not done.
"""

from __future__ import annotations

import os
from typing import List

from runner.cli.common import EXIT_OK, ArgumentParser, command

DEFAULT_WAIT = 120.0  # seconds to wait for cancelled jobs to leave the queue


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run cancel", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory (default: output)")
    parser.add_argument("--submission", metavar="ID",
                        help="cancel only this submission (a directory name under DIR/.slurm)")
    parser.add_argument("--no-wait", action="store_true",
                        help="return at once instead of waiting for the jobs to leave the queue")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.backends.slurm.engine import SlurmBackend, read_submissions
    from runner.errors import StoreError
    from runner.store.sweep import SLURM_DIR, Store, existing_output

    args = make_parser().parse_args(argv)
    store = Store(existing_output(args.output))
    if not read_submissions(store):
        raise StoreError(f"-o {args.output}: no SLURM submission in "
                         f"{os.path.join(args.output, SLURM_DIR)}; only runs submitted with "
                         f"--backend slurm can be cancelled (stop a local run with Ctrl-C)")
    report = SlurmBackend().cancel(store, args.submission,
                                   wait=0.0 if args.no_wait else DEFAULT_WAIT)
    if not report.jobs:
        print("nothing to cancel: no job of this output directory is pending or running")
        return EXIT_OK
    print(f"cancelled {len(report.jobs)} SLURM job{'s' if len(report.jobs) != 1 else ''} "
          f"({', '.join(report.jobs)}) holding {len(report.tasks)} "
          f"task{'s' if len(report.tasks) != 1 else ''}")
    if report.left:
        print(f"still leaving the queue: {', '.join(report.left)}")
    print(f"run status -o {args.output} shows what is left; the same run -y ... --backend slurm "
          f"submits only the unfinished tasks again")
    return EXIT_OK
