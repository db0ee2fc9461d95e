"""One task of a task table, run here: what `run exec-task` does on a SLURM node, and what a
dask worker does for each task it gets (in its own process, without starting Python again).

A task table (written by an engine with `runner.store.base.make_task_table`) names its task
directory (a sweep's output or a runfile's `runs/<name>`), the directory the commands run in,
the invocation's datetime and the tasks. The task runs on the GPUs of this process's
`CUDA_VISIBLE_DEVICES` (as the engine bound them), with the core's executor, so its files are
those of a local run.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from runner.errors import UsageError
from runner.execution.executor import Events, ExecOptions, TaskExecutor
from runner.execution.process import ProcessGroups
from runner.gpu.binding import CUDA_VISIBLE_DEVICES
from runner.store import open_store
from runner.store.base import load_task_table
from runner.task import Slot, Task, TaskResult

_TABLES: Dict[Tuple[str, int, int], Dict[str, Any]] = {}  # (path, mtime, size) -> table
_TABLES_LOCK = threading.Lock()


class _Directory:
    """A process has one current directory: tasks that run in threads of one process (a dask
    worker that shares a GPU between tasks) run together in one directory, and a task that needs
    another waits until none runs in the present one."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._users = 0

    @contextlib.contextmanager
    def at(self, path: Optional[str]) -> Iterator[None]:
        wanted = os.path.abspath(path) if path and os.path.isdir(path) else None
        with self._changed:
            while wanted is not None and os.getcwd() != wanted and self._users:
                self._changed.wait()
            if wanted is not None and os.getcwd() != wanted:
                os.chdir(wanted)
            self._users += 1
        try:
            yield
        finally:
            with self._changed:
                self._users -= 1
                self._changed.notify_all()


_DIRECTORY = _Directory()


def read_table(path: str) -> Dict[str, Any]:
    """The task table at `path`, parsed once per process while the file stays the same."""
    try:
        info = os.stat(path)
        key = (path, info.st_mtime_ns, info.st_size)
    except OSError:
        return load_task_table(path)  # it says what is wrong with it
    with _TABLES_LOCK:
        table = _TABLES.get(key)
    if table is None:
        table = load_task_table(path)
        with _TABLES_LOCK:
            if len(_TABLES) >= 16:
                _TABLES.clear()
            _TABLES[key] = table
    return table


def run_table_task(path: str, index: int, groups: ProcessGroups, *,
                   datetime: Optional[str] = None, force: bool = False, slot: int = 0,
                   record: Optional[Mapping[str, str]] = None,
                   events: Optional[Events] = None) -> TaskResult:
    """Run task `index` of the table at `path` in the table's directory; UsageError when the
    table has no such task."""
    table = read_table(path)
    if not 0 <= index < len(table["tasks"]):
        raise UsageError(f"{path}: no task {index}; the table has {len(table['tasks'])}")
    task = Task.from_json(table["tasks"][index])
    gpus = tuple(g for g in os.environ.get(CUDA_VISIBLE_DEVICES, "").split(",") if g)
    with _DIRECTORY.at(table.get("cwd")):
        store = open_store(table["store"])
        executor = TaskExecutor(store, datetime or table["datetime"], groups,
                                ExecOptions(force=force or table.get("force", False),
                                            record=dict(record or {})), events)
        with store.session():
            return executor(task, Slot(slot, gpus))
