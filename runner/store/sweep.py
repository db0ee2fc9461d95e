"""Every path and file format of an output directory; atomic JSON; per-task locks; "is it done?".

The tree of one output directory::

    <output>/<params.yaml>              copy of the config (`<basename>.<title>` with -t)
    <output>/<name>/param.json          every param of the task and its command lines
    <output>/<name>/stat.json           per command: code, status, times, slot, host, pid
    <output>/<name>/log.<cmd>.<dt>      one log per command per invocation
    <output>/<name>/.stat.json.next     the spare that the next stat.json is written into
    <output>/.runner/runs/<id>.json     task table of one invocation: the tasks it set out to run
    <output>/.slurm/<id>/               one SLURM submission: scripts, task tables, job ids

With `--no-param-dir`, logs are `<output>/log.<cmd>.<dt>.<name>` and the task's state lives in
`<output>/.runner/tasks/<name>/`. "Done" always means that `stat.json` says so.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from runner.errors import StoreError
from runner.store.files import (FileLock, encode_params, encode_state, read_json,
                                 write_json, write_owned)
from runner.task import Status, Task

PARAM_FILE = "param.json"
STAT_FILE = "stat.json"
STATE_DIR = ".runner"
TASK_STATE_DIR = os.path.join(STATE_DIR, "tasks")
RUNS_DIR = os.path.join(STATE_DIR, "runs")
SLURM_DIR = ".slurm"  # submissions of --backend slurm (runner.backends.slurm_backend)


def is_done(entry: Optional[Dict[str, Any]]) -> bool:
    """A command is done only when its `stat.json` entry says it succeeded."""
    return bool(entry) and entry.get("code") == 0 and entry.get("status", "done") == "done"


class TaskPaths:
    """Where one task's files live."""

    __slots__ = ("dir", "param", "stat", "log_dir", "log_suffix", "param_spare", "stat_spare",
                 "missing")

    def __init__(self, output: str, name: str, no_param_dir: bool = False):
        sep = os.sep
        if no_param_dir:
            self.dir = f"{output}{sep}{TASK_STATE_DIR}{sep}{name}"
            self.log_dir = output
            self.log_suffix = "." + name
        else:
            self.dir = f"{output}{sep}{name}"
            self.log_dir = self.dir
            self.log_suffix = ""
        self.param = f"{self.dir}{sep}{PARAM_FILE}"
        self.stat = f"{self.dir}{sep}{STAT_FILE}"
        self.param_spare = f"{self.dir}{sep}.{PARAM_FILE}.next"
        self.stat_spare = f"{self.dir}{sep}.{STAT_FILE}.next"
        self.missing: set = set()  # files a read under the task's lock found absent

    def log(self, command: str, datetime: str) -> str:
        return f"{self.log_dir}{os.sep}log.{command}.{datetime}{self.log_suffix}"


def existing_output(output: str) -> str:
    """`output` if it is a directory, else a StoreError that says what to pass instead."""
    if not os.path.isdir(output):
        raise StoreError(f"-o {output}: no such output directory; pass the directory a run wrote "
                         f"with -o DIR")
    return output


class Store:
    """One output directory of the YAML runner.

    The executor talks to a store only through `lock`, `read_state`, `write_state`,
    `write_params` and `log_paths`, so another layout (a runfile's `metadata.json`) is another
    class with these five methods.
    """

    def __init__(self, output: str, no_param_dir: bool = False):
        self.output = os.path.normpath(output)
        self.no_param_dir = no_param_dir
        self._paths: Dict[str, TaskPaths] = {}

    def paths(self, name: str) -> TaskPaths:
        paths = self._paths.get(name)
        if paths is None:
            if len(self._paths) >= 256:  # a task asks several times in a row; keep only recent
                self._paths.clear()
            paths = self._paths[name] = TaskPaths(self.output, name, self.no_param_dir)
        return paths

    def read_stat(self, name: str) -> Dict[str, Any]:
        if self.no_param_dir:
            return read_json(self.paths(name).stat) or {}
        return read_json(f"{self.output}{os.sep}{name}{os.sep}{STAT_FILE}") or {}

    # -- what the executor uses ---------------------------------------------------------------

    def lock(self, task: Task) -> "FileLock":
        """The task's lock (not yet acquired); creates the task's directory."""
        paths = self.paths(task.name)
        try:
            os.mkdir(paths.dir)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(paths.dir, exist_ok=True)
        return FileLock(paths.dir)

    def read_state(self, task: Task) -> Dict[str, Any]:
        """command -> its `stat.json` entry."""
        paths = self.paths(task.name)
        state = read_json(paths.stat)
        if state is None:
            paths.missing.add(STAT_FILE)
        return state or {}

    def write_state(self, task: Task, state: Dict[str, Any]) -> None:
        paths = self.paths(task.name)
        write_owned(paths.stat, encode_state(state), paths.stat_spare,
                    STAT_FILE not in paths.missing)
        paths.missing.discard(STAT_FILE)

    def write_params(self, task: Task, command_lines: Dict[str, str]) -> None:
        """`param.json`: the params and `_commands`, keeping other commands' earlier lines."""
        paths = self.paths(task.name)
        old = read_json(paths.param)
        lines = dict(old.get("_commands", {})) if isinstance(old, dict) else {}
        lines.update(command_lines)
        write_owned(paths.param, encode_params({**task.params, "_commands": lines}),
                    paths.param_spare, old is not None)

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


def summarize_commands(stat: Dict[str, Any], commands: List[str]) -> Status:
    """One state for a task from its commands' entries (running > failed > ... > done)."""
    states = [Status(stat[c].get("status", "done" if stat[c].get("code") == 0 else "failed"))
              if c in stat else Status.PENDING for c in commands]
    for status in (Status.RUNNING, Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED,
                   Status.PENDING):
        if status in states:
            return status
    return Status.DONE
