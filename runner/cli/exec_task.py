"""`run exec-task TABLE [INDEX]`: run one task of a task table here, as a local worker would.

Remote engines (SLURM job arrays) call this on the node that got the task: the GPUs are the ones
the engine bound (`CUDA_VISIBLE_DEVICES` as it set it; none if unset), and the task's files are
the same as those of a local run.
"""

from __future__ import annotations

import os
from typing import List

from runner.cli.common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ArgumentParser, command,
                               stop_on_signals)


def make_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="run exec-task", description=__doc__.splitlines()[0])
    parser.add_argument("table", help="task table (JSON) written by the runner")
    parser.add_argument("index", nargs="?", type=int,
                        help="which task (default: $SLURM_ARRAY_TASK_ID)")
    parser.add_argument("--datetime", help="the invocation's datetime (default: the table's)")
    parser.add_argument("-f", "--force", action="store_true", help="re-run done commands")
    parser.add_argument("--grace", type=float, default=10.0, metavar="SECONDS",
                        help="seconds between SIGTERM and SIGKILL when stopped")
    return parser


@command
def main(argv: List[str]) -> int:
    from runner.errors import UsageError
    from runner.execution.executor import ExecOptions, TaskExecutor
    from runner.execution.process import CUDA_VISIBLE_DEVICES, ProcessGroups
    from runner.store.sweep import Store, load_task_table
    from runner.task import Slot, Task
    from runner.cli.console import Console

    args = make_parser().parse_args(argv)
    table = load_task_table(args.table)
    index = args.index
    if index is None:
        index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "-1"))
    if not 0 <= index < len(table["tasks"]):
        raise UsageError(f"{args.table}: no task {index}; the table has {len(table['tasks'])} "
                         f"(pass INDEX or set SLURM_ARRAY_TASK_ID)")
    if table.get("cwd") and os.path.isdir(table["cwd"]):
        os.chdir(table["cwd"])
    task = Task.from_json(table["tasks"][index])
    gpus = tuple(g for g in os.environ.get(CUDA_VISIBLE_DEVICES, "").split(",") if g)
    slot = Slot(int(os.environ.get("RUNNER_SLOT", "0")), gpus)
    record = {k.lower(): os.environ[v] for k, v in (("slurm_job_id", "SLURM_JOB_ID"),
                                                     ("slurm_array_job_id", "SLURM_ARRAY_JOB_ID"),
                                                     ("slurm_array_task_id", "SLURM_ARRAY_TASK_ID"),
                                                     ("slurm_node", "SLURMD_NODENAME"))
              if v in os.environ}
    store = Store(table["output"], no_param_dir=table.get("no_param_dir", False))
    groups = ProcessGroups(grace=args.grace)
    executor = TaskExecutor(store, args.datetime or table["datetime"], groups,
                            ExecOptions(force=args.force or table.get("force", False),
                                        record=record), Console(total=1))
    stopped = []
    with stop_on_signals(lambda signum: (stopped.append(signum), groups.stop())):
        result = executor(task, slot)
    groups.close()
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.failed is not None else EXIT_OK
