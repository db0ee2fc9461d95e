"""What runs inside a dask worker process: the task function and the calls that stop tasks.

`run_task` is what the dask engine submits for each task. On the worker it checks that the
output directory is there, tells the submitting `run` that the task starts (a dask event on the
submission's topic), and runs the task with the core's single-task executor in the worker
process itself (`runner.execution.table.run_table_task`: the task's files, its commands each a
process group of its own with the worker's `CUDA_VISIBLE_DEVICES`, the worker's name and host
recorded). It returns the exit status `run exec-task` would have (0 done, 1 failed, 130
stopped, 2 a bad table, with the reason); the task's files say the rest.

No command outlives its worker: the worker's guardian (`runner.execution.guardian`, a process
of its own) hears of every command that starts and ends, and stops those still running when the
worker process is gone, however it died.

`stop_submission` (called through `client.run` on every worker) stops the tasks of a submission
that run there, as Ctrl-C stops a local run, and keeps later ones of it from starting;
`running_tasks` says which still run.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Dict, List, Optional, Set, Tuple

from runner.backends.dask.needs import SLOT_VARIABLE
from runner.execution.guardian import Guardian
from runner.gpu.binding import CUDA_VISIBLE_DEVICES
from runner.identity import HOST

TOPIC_PREFIX = "runner-"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def topic_of(token: str) -> str:
    """The dask event topic on which a submission's workers say that a task started."""
    return TOPIC_PREFIX + token


def key_of(token: str, index: int) -> str:
    """The dask key of a submission's task `index` (unique per scheduler)."""
    return f"{TOPIC_PREFIX}{token}-{index}"


class _Run:
    """A task running in this worker process: its process groups, to stop them."""

    def __init__(self, task: str, groups: Any):
        self.task = task
        self.groups = groups
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1
        self.groups.stop() if self.stops == 1 else self.groups.kill()


_GUARDIAN = Guardian()
_LOCK = threading.Lock()
_RUNNING: Dict[str, Dict[str, _Run]] = {}  # submission token -> dask key -> its run
_STOPPED: Set[str] = set()  # submissions stopped here: their tasks no longer start


def run_task(table: str, index: int, task: str, *, token: str, submission: str,
             grace: float) -> Dict[str, Any]:
    """Run task `index` of `table` on this worker (see the module's docstring)."""
    from distributed import get_worker

    from runner.errors import RunnerError
    from runner.execution.process import ProcessGroups
    from runner.execution.table import run_table_task

    worker = get_worker()
    name = str(worker.name)
    slot = os.environ.get(SLOT_VARIABLE, "0")
    outcome: Dict[str, Any] = {"name": name, "host": HOST, "slot": int(slot),
                               "gpus": os.environ.get(CUDA_VISIBLE_DEVICES, "")}
    problem = check_visible(table, name)
    if problem:
        return {**outcome, "refused": problem}
    key = str(worker.get_current_task())
    groups = ProcessGroups(grace=grace, watcher=_GUARDIAN)
    run = _Run(task, groups)
    with _LOCK:
        if token in _STOPPED:
            return {**outcome, "cancelled": True}
        _RUNNING.setdefault(token, {})[key] = run
    try:
        # (the scheduler sets "worker" of a worker's event to the worker's address)
        worker.log_event(topic_of(token), {"key": key, "name": name, "slot": outcome["slot"],
                                           "gpus": outcome["gpus"]})
        result = run_table_task(table, index, groups, slot=int(slot), record={
            "dask_worker": name, "dask_host": HOST, "dask_submission": submission})
        if groups.stopping.is_set():
            code = EXIT_INTERRUPTED
        else:
            code = EXIT_FAILED if result.is_failure else EXIT_OK
        return {**outcome, "exit": code, "output": result.error or ""}
    except RunnerError as e:
        return {**outcome, "exit": EXIT_USAGE, "output": f"run: error: {e}"}
    finally:
        groups.close()
        with _LOCK:
            runs = _RUNNING.get(token, {})
            runs.pop(key, None)
            if not runs:
                _RUNNING.pop(token, None)


def check_visible(table: str, worker: str) -> str:
    """'' when this machine sees the task table (it lies in the output directory), else the
    line that fails the task."""
    if os.path.isfile(table):
        return ""
    output = os.path.dirname(os.path.dirname(os.path.dirname(table)))
    return (f"worker {worker} on {HOST} cannot see the output directory {output} (its task "
            f"table {table} is not there): the output directory must be on a filesystem every "
            f"worker mounts")


def stop_submission(token: str) -> List[str]:
    """Stop the tasks of a submission that run in this worker process (their commands are
    stopped as on Ctrl-C; a second call kills them at once) and start none of it from now."""
    with _LOCK:
        _STOPPED.add(token)
        runs = list(_RUNNING.get(token, {}).values())
    for run in runs:
        run.stop()
    return [run.task for run in runs]


def running_tasks(token: str) -> List[Tuple[str, Optional[int]]]:
    """(task, worker pid) of each task of a submission that still runs here."""
    with _LOCK:
        return [(run.task, os.getpid()) for run in _RUNNING.get(token, {}).values()]


def dask_setup(worker) -> None:
    """dask's preload hook, run by each worker of `run worker` as it starts: Ctrl-C or a hangup
    at the terminal is for `run worker`, which closes its workers in order (a worker killed by
    it would be started again by its nanny)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
