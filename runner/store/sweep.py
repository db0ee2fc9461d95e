"""A sweep's output directory: every path and file format of it, behind the task-store contract.

The tree of one output directory::

    <output>/<params.yaml>              copy of the config (`<basename>.<title>` with -t)
    <output>/<name>/param.json          every param of the task and its command lines
    <output>/<name>/stat.json           per command: code, status, times, slot, host, pid
    <output>/<name>/log.<cmd>.<dt>      one log per command per invocation
    <output>/<name>/.stat.json.next     the spare that the next stat.json is written into
    <output>/.runner/runs/<id>.json     task table of one invocation: the tasks it set out to run

With `--no-param-dir`, logs are `<output>/log.<cmd>.<dt>.<name>` and the task's state lives in
`<output>/.runner/tasks/<name>/`. "Done" always means that `stat.json` says so (`state.is_done`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

from runner.errors import DamagedFileError, UnsafePathError
from runner.spec.expand import LOG_NAME
from runner.store.base import STATE_DIR, Split, TaskStore
from runner.store.files import (FileLock, check_file, encode_params, encode_state,
                                make_directory, read_json, write_json, write_owned)
from runner.store.mlrunner import find as find_mlrunner
from runner.store.mlrunner import index_mlrunner, mlrunner_dirs, read_mlrunner_dir
from runner.store.state import (TaskState, is_done, is_stale, params_digest, parse_params,
                                parse_stat, summarize, what_changed)
from runner.task import Status, Task

PARAM_FILE = "param.json"
STAT_FILE = "stat.json"
TASK_STATE_DIR = os.path.join(STATE_DIR, "tasks")
CHANGED_FILE = "changed.json"  # <output>/.runner/changed.json: what the last planning found


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
        return f"{self.log_dir}{os.sep}{LOG_NAME.format(command=command, datetime=datetime)}" \
            f"{self.log_suffix}"


class SweepStore(TaskStore):
    """One output directory of the YAML runner."""

    kind = "sweep"

    def __init__(self, output: str, no_param_dir: bool = False):
        self.root = self.output = os.path.normpath(output)
        self.no_param_dir = no_param_dir
        self._paths: Dict[str, TaskPaths] = {}

    def paths(self, name: str) -> TaskPaths:
        paths = self._paths.get(name)
        if paths is None:
            if len(self._paths) >= 256:  # a task asks several times in a row; keep only recent
                self._paths.clear()
            paths = self._paths[name] = TaskPaths(self.output, name, self.no_param_dir)
        return paths

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "root": self.output, "no_param_dir": self.no_param_dir}

    def read_stat(self, name: str) -> Dict[str, Dict[str, Any]]:
        """The task's `stat.json` (empty when there is none); DamagedFileError, UnsafePathError."""
        path = (self.paths(name).stat if self.no_param_dir
                else f"{self.output}{os.sep}{name}{os.sep}{STAT_FILE}")
        return parse_stat(read_json(path), path)

    # -- planning -------------------------------------------------------------------------------

    def split(self, tasks: List[Task], force: bool = False, rerun_changed: bool = False,
              as_of: Optional[Callable[[Task, str], Dict[str, str]]] = None,
              ignore: Collection[str] = ()) -> Split:
        """Which commands still have to run. A done command whose params or command differ from
        what ran (`as_of(task, datetime)` gives the commands as they read at the datetime they
        ran) is in `changed`, and skipped unless `rerun_changed`. A command that mlrunner
        recorded as finished for a task of equal params (`ignore`: params mlrunner does not
        record) is done too: the task keeps only its other commands."""
        split = Split()
        if force or not os.path.isdir(self.output):
            split.todo = [(t, list(t.commands)) for t in tasks]
            return split
        legacy = index_mlrunner(self.output, ignore)
        for task in tasks:
            try:
                stat = self.read_stat(task.name)
            except (DamagedFileError, UnsafePathError) as e:
                split.notes[task.name] = str(e)
                stat = {}
            earlier = find_mlrunner(legacy, task.params, ignore)
            if earlier is not None:
                done = [c for c in earlier.done if c in task.commands and c not in stat]
                if done:
                    split.imported[task.name] = (earlier.dir, done)
                    task = replace(task, commands={c: text for c, text in task.commands.items()
                                                   if c not in done})
            pending = []
            digest = None
            for command, text in task.commands.items():
                entry = stat.get(command)
                if not is_done(entry):
                    pending.append(command)
                    continue
                digest = digest or params_digest(task.params)
                if entry.get("command", text) != text and as_of and entry.get("datetime"):
                    text = as_of(task, entry["datetime"])[command]
                changes = what_changed(entry, text, digest)
                if changes:
                    split.changed.setdefault(task.name, {})[command] = changes
                    split.changed_since[(task.name, command)] = entry.get("start")
                    if rerun_changed:
                        pending.append(command)
            if pending:
                split.todo.append((task, [c for c in task.commands if c in pending]))
            else:
                split.done.append(task)
        return split

    def write_changed(self, split: Split) -> None:
        """Record what the last planning found changed, for `run status` (`done (changed)`)."""
        path = os.path.join(self.state_dir, CHANGED_FILE)
        if not split.changed and not os.path.lexists(path):
            return
        make_directory(self.state_dir)
        record = {name: {c: {"changes": changes, "start": split.changed_since.get((name, c))}
                         for c, changes in commands.items()}
                  for name, commands in split.changed.items()}
        write_json(path, record, indent=None, sort_keys=False)

    # -- what the executor uses -----------------------------------------------------------------

    def lock(self, task: Task) -> FileLock:
        paths = self.paths(task.name)
        try:
            os.mkdir(paths.dir)
        except FileExistsError:
            pass
        except FileNotFoundError:
            make_directory(paths.dir)
        return FileLock(paths.dir, directory=True)

    def read_state(self, task: Task) -> Dict[str, Dict[str, Any]]:
        paths = self.paths(task.name)
        state = read_json(paths.stat)
        if state is None:
            paths.missing.add(STAT_FILE)
        return parse_stat(state, paths.stat)

    def check(self, task: Task) -> None:
        check_file(self.paths(task.name).stat_spare)

    def write_state(self, task: Task, state: Dict[str, Any]) -> None:
        paths = self.paths(task.name)
        write_owned(paths.stat, encode_state(state), paths.stat_spare,
                    STAT_FILE not in paths.missing)
        paths.missing.discard(STAT_FILE)

    def write_params(self, task: Task, command_lines: Dict[str, str]) -> None:
        """`param.json`: the params and `_commands`, keeping other commands' earlier lines."""
        paths = self.paths(task.name)
        try:
            old = parse_params(read_json(paths.param), paths.param) or None
        except DamagedFileError:
            old = {}  # replaced by what this run writes
        lines = dict(old.get("_commands", {})) if old else {}
        lines.update(command_lines)
        write_owned(paths.param, encode_params({**task.params, "_commands": lines}),
                    paths.param_spare, old is not None)

    def log_paths(self, task: Task, command: str, datetime: str) -> Tuple[str, Optional[str]]:
        return self.paths(task.name).log(command, datetime), None

    # -- reading back ---------------------------------------------------------------------------

    def iter_task_dirs(self):
        """Directories that hold a `param.json` or `stat.json`, in either layout."""
        for base in (self.output, os.path.join(self.output, TASK_STATE_DIR)):
            try:
                entries = sorted(os.scandir(base), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                if (os.path.lexists(os.path.join(entry.path, STAT_FILE))
                        or os.path.lexists(os.path.join(entry.path, PARAM_FILE))):
                    yield entry.path

    def states(self) -> List[TaskState]:
        states: Dict[str, TaskState] = {}
        for directory in self.iter_task_dirs():
            state = read_task_dir(directory)
            states.setdefault(state.name, state)
        self._add_mlrunner(states)
        self._mark_changed(states)
        for _, table in self.iter_run_tables():
            for task in table["tasks"]:
                known = states.get(task["name"])
                if known is None:
                    commands = {c: {"status": Status.PENDING.value} for c in task["commands"]}
                    states[task["name"]] = TaskState(task["name"], Status.PENDING, commands,
                                                     task.get("params") or {},
                                                     self.paths(task["name"]).dir)
                else:
                    for command in task["commands"]:
                        known.commands.setdefault(command, {"status": Status.PENDING.value})
                    known.resummarize()
        return sorted(states.values(), key=lambda s: s.name)

    def state_of(self, name: str) -> TaskState:
        return read_task_dir(self.paths(name).dir)

    def _add_mlrunner(self, states: Dict[str, TaskState]) -> None:
        """Tasks that mlrunner ran here: their own rows, or, in a directory our files share,
        the commands only mlrunner recorded."""
        by_dir = {s.dir: s for s in states.values()}
        for directory in mlrunner_dirs(self.output):
            earlier = read_mlrunner_dir(directory)
            ours = by_dir.get(directory)
            if ours is None:
                states.setdefault(earlier.name, earlier.state())
                continue
            for command, entry in earlier.commands.items():
                ours.commands.setdefault(command, entry)
            ours.resummarize()

    def _mark_changed(self, states: Dict[str, TaskState]) -> None:
        """Done commands the last planning found changed, and that have not run since."""
        path = os.path.join(self.state_dir, CHANGED_FILE)
        try:
            changed = read_json(path)
        except (DamagedFileError, UnsafePathError):
            return
        if not isinstance(changed, dict):
            return
        for name, commands in changed.items():
            state = states.get(name)
            if state is None or not isinstance(commands, dict):
                continue
            for command, found in commands.items():
                entry = state.commands.get(command) or {}
                if (is_done(entry) and isinstance(found, dict) and isinstance(
                        found.get("changes"), list) and found.get("start") == entry.get("start")):
                    state.changed[command] = found["changes"]  # and it has not run since


def read_task_dir(directory: str) -> TaskState:
    """A task as its directory's `param.json` and `stat.json` describe it; a damaged file makes
    it `unreadable`, with the reason in its note."""
    note = ""
    try:
        params = parse_params(read_json(os.path.join(directory, PARAM_FILE)),
                              os.path.join(directory, PARAM_FILE))
    except (DamagedFileError, UnsafePathError) as e:
        params, note = {}, str(e)
    try:
        stat = parse_stat(read_json(os.path.join(directory, STAT_FILE)),
                          os.path.join(directory, STAT_FILE))
    except (DamagedFileError, UnsafePathError) as e:
        stat, note = {}, note or str(e)
    name = params.get("_name") or os.path.basename(directory)
    commands: Dict[str, Dict[str, Any]] = {}
    for command in list(stat) + [c for c in params.get("_commands") or {} if c not in stat]:
        entry = dict(stat.get(command) or {"status": Status.PENDING.value})
        if entry.get("status") == Status.RUNNING.value and is_stale(entry):
            entry["status"] = Status.INTERRUPTED.value
            entry["note"] = "the invocation running it is gone"
        commands[command] = entry
    state = Status.UNREADABLE if note else summarize(commands)
    return TaskState(name, state, commands, params, directory, note)
