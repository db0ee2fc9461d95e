"""`run exec-task TABLE INDEX`: run one task of a task table here, as a local worker would.

Remote engines (SLURM job arrays, dask workers) call this on the machine that got the task: the
GPUs are the ones the engine bound (`CUDA_VISIBLE_DEVICES` as it set it; none if unset), and the
task's files are the same as those of a local run, in whichever kind of task directory the table
names (a sweep's output, a runfile's directory).
"""

from __future__ import annotations

import functools
from typing import List

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ArgumentParser, command,
                               grace_seconds, stop_on_signals)


@functools.lru_cache(maxsize=None)
def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run exec-task", description=__doc__.splitlines()[0])
    parser.add_argument("table", help="task table (JSON) written by the runner")
    parser.add_argument("index", type=int, help="which task of the table (0 the first)")
    parser.add_argument("--datetime", help="the invocation's datetime (default: the table's)")
    parser.add_argument("-f", "--force", action="store_true", help="re-run done commands")
    parser.add_argument("--grace", type=grace_seconds, default=10.0, metavar="SECONDS",
                        help="seconds between SIGTERM and SIGKILL when stopped")
    parser.add_argument("--slot", type=int, default=0, metavar="N",
                        help="the slot number recorded in stat.json (default: 0)")
    parser.add_argument("--record", action="append", default=[], metavar="KEY=VALUE",
                        help="a field to record in each command's state (the engine's job id, "
                             "node, worker); may be repeated")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.cli.console import Console
    from runner.errors import UsageError
    from runner.execution.process import ProcessGroups
    from runner.execution.table import run_table_task

    args = make_parser().parse_args(argv)
    record = {}
    for item in args.record:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--record {item!r}: expected KEY=VALUE")
        if value:
            record[key] = value
    groups = ProcessGroups(grace=args.grace)
    stopped: List[int] = []
    with stop_on_signals(lambda signum: (stopped.append(signum), groups.stop())):
        result = run_table_task(args.table, args.index, groups, datetime=args.datetime,
                                force=args.force, slot=args.slot, record=record,
                                events=Console(total=1))
    groups.close()
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.is_failure else EXIT_OK
