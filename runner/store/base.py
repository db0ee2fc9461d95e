"""The task-store contract: what every kind of task directory offers the layers above it.

Two layouts implement it: a sweep's output directory (`runner.store.sweep.SweepStore`: a
`stat.json` per task) and a runfile's directory (`runner.store.runfile.RunfileStore`: a
`job.json` per job and `metadata.json`). The executor, every engine and `run status` talk to a
store only through these methods, so a task is planned, run, skipped and shown the same way
whatever wrote its directory and wherever it ran:

* planning: `split(tasks, force)` -> what still has to run (the done rule is `state.is_done`);
* the executor, holding `lock(task)`: `read_state`, `check`, `write_params`, `write_state`,
  `log_paths`; `session()` around a whole run (a writer thread that must flush on exit);
* records: `write_run_table` (the tasks an invocation set out to run, and who runs them),
  `iter_run_tables`, `state_dir` (where engines keep their records);
* reading back: `states()` (for `run status`, `run results`), `state_of(name)`, `describe()`
  (a JSON description from which `runner.store.open_store` opens the same store on another
  machine: `run exec-task`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, ContextManager, Dict, Iterator, List, Optional, Tuple

from runner.errors import DamagedFileError, UnsafePathError
from runner.store.files import FileLock, make_directory, read_json, write_json
from runner.store.state import TaskState
from runner.task import Task

STATE_DIR = ".runner"  # the runner's own records inside a task directory's root
RUNS_DIR = "runs"  # <root>/.runner/runs/<id>.json: one per invocation
TABLE_VERSION = 2


@dataclass
class Split:
    """What planning found: tasks with work left (and which commands), tasks all done, and
    tasks whose files could not be trusted (task -> why; they run again)."""

    todo: List[Tuple[Task, List[str]]] = field(default_factory=list)
    done: List[Task] = field(default_factory=list)
    notes: Dict[str, str] = field(default_factory=dict)
    # task -> {done command -> what changed since it ran: 'params', 'command'}; skipped unless
    # the split was asked to run changed work again (then they are in `todo`)
    changed: Dict[str, Dict[str, List[str]]] = field(default_factory=dict)
    changed_since: Dict[Tuple[str, str], Any] = field(default_factory=dict)  # its run's start
    # task -> (directory, commands) that another tool (mlrunner) recorded as done there
    imported: Dict[str, Tuple[str, List[str]]] = field(default_factory=dict)

    def rerun(self) -> Dict[str, set]:
        """task -> the done commands that must run again (changed ones, when rerun)."""
        todo = {t.name: set(c) for t, c in self.todo}
        return {name: {c for c in commands if c in todo.get(name, ())}
                for name, commands in self.changed.items()
                if any(c in todo.get(name, ()) for c in commands)}

    @property
    def tasks(self) -> List[Task]:
        return [task for task, _ in self.todo]


class TaskStore:
    """A directory of tasks (see the module's docstring for the contract)."""

    kind = ""  # recorded in task tables, so that `open_store` opens the same kind elsewhere
    noun = "task"  # what the console calls one of its tasks

    root: str

    # -- planning -----------------------------------------------------------------------------

    def split(self, tasks: List[Task], force: bool = False) -> Split:
        raise NotImplementedError

    # -- the executor, under the task's lock --------------------------------------------------

    def lock(self, task: Task) -> FileLock:
        """The task's lock (not yet acquired); creates the task's directory."""
        raise NotImplementedError

    def read_state(self, task: Task) -> Dict[str, Dict[str, Any]]:
        """command -> its recorded entry. DamagedFileError when the file cannot be trusted,
        UnsafePathError when it is a link or a special file."""
        raise NotImplementedError

    def check(self, task: Task) -> None:
        """UnsafePathError when a file the task's run will write is a link or a special file:
        called before the task's first command starts."""
        raise NotImplementedError

    def write_state(self, task: Task, state: Dict[str, Dict[str, Any]]) -> None:
        raise NotImplementedError

    def write_params(self, task: Task, command_lines: Dict[str, str]) -> None:
        """A run of the task begins: record its params and the shell line of each command."""
        raise NotImplementedError

    def log_paths(self, task: Task, command: str, datetime: str) -> Tuple[str, Optional[str]]:
        """(log of stdout, log of stderr or None when stderr goes to the same log)."""
        raise NotImplementedError

    def session(self) -> ContextManager[None]:
        """Entered around a whole run (and left however it ends)."""
        return contextlib.nullcontext()

    # -- records --------------------------------------------------------------------------------

    @property
    def state_dir(self) -> str:
        return os.path.join(self.root, STATE_DIR)

    def run_table_path(self, run_id: str) -> str:
        return os.path.join(self.state_dir, RUNS_DIR, f"{run_id}.json")

    def write_run_table(self, run_id: str, tasks: List[Task], info: Dict[str, Any]) -> str:
        """Record the tasks an invocation sets out to run (and `info`: who runs them)."""
        path = self.run_table_path(run_id)
        make_directory(os.path.dirname(path))
        write_json(path, make_task_table(self, tasks, info), indent=None, sort_keys=False)
        return path

    def iter_run_tables(self) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """(path, table) of every invocation's table that can be read."""
        directory = os.path.join(self.state_dir, RUNS_DIR)
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if name.endswith(".json"):
                path = os.path.join(directory, name)
                try:
                    yield path, parse_task_table(read_json(path), path)
                except (DamagedFileError, UnsafePathError):
                    continue

    # -- reading back ---------------------------------------------------------------------------

    def states(self) -> List[TaskState]:
        """Every task that has files or that an invocation set out to run, by name."""
        raise NotImplementedError

    def state_of(self, name: str) -> TaskState:
        """One task's state, read again."""
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        raise NotImplementedError


def make_task_table(store: TaskStore, tasks: List[Task], info: Dict[str, Any]) -> Dict[str, Any]:
    """The self-contained description of tasks that `run exec-task` executes anywhere."""
    return {"version": TABLE_VERSION, "store": store.describe(), "cwd": os.getcwd(), **info,
            "tasks": [t.to_json() for t in tasks]}


def parse_task_table(table: Any, path: str) -> Dict[str, Any]:
    """A task table's content, checked; DamagedFileError when it has another shape."""
    if not isinstance(table, dict) or not isinstance(table.get("tasks"), list):
        raise DamagedFileError(path, "not a task table (expected a JSON object with a list "
                                     "'tasks')")
    for index, task in enumerate(table["tasks"]):
        if not (isinstance(task, dict) and isinstance(task.get("name"), str)
                and isinstance(task.get("commands"), dict)):
            raise DamagedFileError(path, f"task {index}: expected an object with a 'name' and "
                                         f"'commands'")
    if "store" not in table and "output" in table:  # written before stores described themselves
        table["store"] = {"kind": "sweep", "root": table["output"],
                          "no_param_dir": table.get("no_param_dir", False)}
    if not isinstance(table.get("store"), dict):
        raise DamagedFileError(path, "no 'store' (which directory its tasks belong to)")
    return table


def load_task_table(path: str) -> Dict[str, Any]:
    table = read_json(path)
    if table is None and not os.path.lexists(path):
        raise DamagedFileError(path, "no such task table (run exec-task takes a table that an "
                                     "engine wrote)")
    return parse_task_table(table, path)
