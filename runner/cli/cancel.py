"""`run cancel -o DIR`: stop what every engine runs for a task directory: a local `run` in
another terminal (asked to stop as Ctrl-C would), the jobs of a cluster's queue.

Cancelled tasks that had started record `interrupted`; running the same command again runs only
what is not done.
"""

from __future__ import annotations

from typing import List

from runner.cli.common import EXIT_OK, ArgumentParser, command

DEFAULT_WAIT = 120.0  # seconds to wait for what was cancelled to end


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run cancel", description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="output", metavar="DIR",
                        help="output directory, or a launch's runs/<name> (default: output)")
    parser.add_argument("--submission", metavar="ID",
                        help="cancel only this SLURM submission (a directory name under "
                             "DIR/.slurm)")
    parser.add_argument("--no-wait", action="store_true",
                        help="return at once instead of waiting for what was cancelled to end")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.backends.registry import engines_in
    from runner.store import open_directory

    args = make_parser().parse_args(argv)
    store = open_directory(args.output)
    lines: List[str] = []
    left: List[str] = []
    for engine in engines_in(store):
        report = engine.cancel(store, args.submission, wait=0.0 if args.no_wait else
                               DEFAULT_WAIT)
        lines.extend(report.lines)
        left.extend(report.left)
    if not lines:
        print(f"nothing to cancel: nothing runs for {args.output} (no live local run, no job in "
              f"a queue)")
        return EXIT_OK
    print("\n".join(lines))
    if left:
        print(f"still ending: {', '.join(left)}")
    print(f"run status -o {args.output} shows what is left; running the same command again runs "
          f"only the unfinished tasks")
    return EXIT_OK
