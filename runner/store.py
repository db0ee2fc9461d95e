"""Every path and file format of an output directory; atomic JSON; per-task locks; "is it done?".

The tree of one output directory::

    <output>/<params.yaml>              copy of the config (`<basename>.<title>` with -t)
    <output>/<name>/param.json          every param of the task and its command lines
    <output>/<name>/stat.json           per command: code, status, times, slot, host, pid
    <output>/<name>/log.<cmd>.<dt>      one log per command per invocation
    <output>/<name>/.lock               held while an invocation works on the task
    <output>/.runner/runs/<id>.json     task table of one invocation: the tasks it set out to run
    <output>/.slurm/<id>/               one SLURM submission: scripts, task tables, job ids

With `--no-param-dir`, logs are `<output>/log.<cmd>.<dt>.<name>` and the task's state lives in
`<output>/.runner/tasks/<name>/`. "Done" always means that `stat.json` says so.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

from runner.errors import StoreError
from runner.task import Status, Task

PARAM_FILE = "param.json"
STAT_FILE = "stat.json"
LOCK_FILE = ".lock"
STATE_DIR = ".runner"
TASK_STATE_DIR = os.path.join(STATE_DIR, "tasks")
RUNS_DIR = os.path.join(STATE_DIR, "runs")
SLURM_DIR = ".slurm"  # submissions of --backend slurm (runner.backends.slurm_backend)
HOST = socket.gethostname()


def write_json(path: str, data: Any, indent: Optional[int] = 4, sort_keys: bool = True) -> None:
    """Write JSON so that a reader sees the old file or the new one, never half of one."""
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=indent, sort_keys=sort_keys, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: str) -> Optional[Any]:
    """The parsed file, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        raise StoreError(f"{path}: not valid JSON ({e}); fix or delete the file") from None


def is_done(entry: Optional[Dict[str, Any]]) -> bool:
    """A command is done only when its `stat.json` entry says it succeeded."""
    return bool(entry) and entry.get("code") == 0 and entry.get("status", "done") == "done"


class TaskPaths:
    """Where one task's files live."""

    __slots__ = ("dir", "param", "stat", "lock", "log_dir", "log_suffix")

    def __init__(self, output: str, name: str, no_param_dir: bool = False):
        if no_param_dir:
            self.dir = os.path.join(output, TASK_STATE_DIR, name)
            self.log_dir = output
            self.log_suffix = "." + name
        else:
            self.dir = os.path.join(output, name)
            self.log_dir = self.dir
            self.log_suffix = ""
        self.param = os.path.join(self.dir, PARAM_FILE)
        self.stat = os.path.join(self.dir, STAT_FILE)
        self.lock = os.path.join(self.dir, LOCK_FILE)

    def log(self, command: str, datetime: str) -> str:
        return os.path.join(self.log_dir, f"log.{command}.{datetime}{self.log_suffix}")


class Store:
    """One output directory of the YAML runner.

    The executor talks to a store only through `lock`, `read_state`, `write_state`,
    `write_params` and `log_paths`, so another layout (a runfile's `metadata.json`) is another
    class with these five methods.
    """

    def __init__(self, output: str, no_param_dir: bool = False):
        self.output = os.path.normpath(output)
        self.no_param_dir = no_param_dir

    def paths(self, name: str) -> TaskPaths:
        return TaskPaths(self.output, name, self.no_param_dir)

    def read_stat(self, name: str) -> Dict[str, Any]:
        return read_json(self.paths(name).stat) or {}

    # -- what the executor uses ---------------------------------------------------------------

    def lock(self, task: Task) -> "TaskLock":
        """The task's lock (not yet acquired); creates the task's directory."""
        paths = self.paths(task.name)
        os.makedirs(paths.dir, exist_ok=True)
        return TaskLock(paths.lock)

    def read_state(self, task: Task) -> Dict[str, Any]:
        """command -> its `stat.json` entry."""
        return self.read_stat(task.name)

    def write_state(self, task: Task, state: Dict[str, Any]) -> None:
        write_json(self.paths(task.name).stat, state, sort_keys=False)

    def write_params(self, task: Task, command_lines: Dict[str, str]) -> None:
        """`param.json`: the params and `_commands`, keeping other commands' earlier lines."""
        path = self.paths(task.name).param
        old = read_json(path) if os.path.exists(path) else None
        lines = dict(old.get("_commands", {})) if isinstance(old, dict) else {}
        lines.update(command_lines)
        write_json(path, {**task.params, "_commands": lines})

    def log_paths(self, task: Task, command: str, datetime: str) -> Tuple[str, Optional[str]]:
        """(log of stdout, log of stderr or None when stderr goes to the same log)."""
        return self.paths(task.name).log(command, datetime), None

    def pending_commands(self, task: Task, force: bool = False) -> List[str]:
        """The task's commands that still have to run (all of them with `force`)."""
        if force:
            return list(task.commands)
        stat = self.read_stat(task.name)
        return [c for c in task.commands if not is_done(stat.get(c))]

    def run_table_path(self, run_id: str) -> str:
        return os.path.join(self.output, RUNS_DIR, f"{run_id}.json")

    def write_run_table(self, run_id: str, tasks: List[Task], info: Dict[str, Any]) -> str:
        """Record the tasks an invocation sets out to run, so `run status` can list pending ones."""
        path = self.run_table_path(run_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json(path, make_task_table(self.output, self.no_param_dir, tasks, info), indent=None,
                   sort_keys=False)
        return path

    def iter_run_tables(self) -> Iterator[Dict[str, Any]]:
        directory = os.path.join(self.output, RUNS_DIR)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json"):
                table = read_json(os.path.join(directory, name))
                if table:
                    yield table

    def iter_task_dirs(self) -> Iterator[str]:
        """Directories that hold a `param.json` or `stat.json`, in either layout."""
        for base in (self.output, os.path.join(self.output, TASK_STATE_DIR)):
            try:
                entries = sorted(os.scandir(base), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                if (os.path.exists(os.path.join(entry.path, STAT_FILE))
                        or os.path.exists(os.path.join(entry.path, PARAM_FILE))):
                    yield entry.path


def make_task_table(output: str, no_param_dir: bool, tasks: List[Task],
                    info: Dict[str, Any]) -> Dict[str, Any]:
    """The self-contained description of tasks that `run exec-task` executes anywhere."""
    return {"version": 1, "output": output, "no_param_dir": no_param_dir, "cwd": os.getcwd(),
            **info, "tasks": [t.to_json() for t in tasks]}


def load_task_table(path: str) -> Dict[str, Any]:
    table = read_json(path)
    if not isinstance(table, dict) or "tasks" not in table:
        raise StoreError(f"{path}: not a task table (expected a JSON object with 'tasks')")
    return table


class TaskLock:
    """The per-task lock that keeps two invocations from running one task at the same time."""

    def __init__(self, path: str):
        from filelock import FileLock

        self._lock = FileLock(path, thread_local=False)

    def try_acquire(self, timeout: float = 0) -> bool:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=timeout, poll_interval=0.05)
            return True
        except Timeout:
            return False

    def release(self) -> None:
        self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked


def summarize_commands(stat: Dict[str, Any], commands: List[str]) -> Status:
    """One state for a task from its commands' entries (running > failed > ... > done)."""
    states = [Status(stat[c].get("status", "done" if stat[c].get("code") == 0 else "failed"))
              if c in stat else Status.PENDING for c in commands]
    for status in (Status.RUNNING, Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED,
                   Status.PENDING):
        if status in states:
            return status
    return Status.DONE
