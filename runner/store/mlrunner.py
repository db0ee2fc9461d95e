"""Output directories that mlrunner wrote: its YAML files `param` and `stat` in each task's
directory, read so that `run` can show those tasks and finish a half-done mlrunner sweep.

mlrunner's `stat` maps each command to `finished`, `failed` or `running` (mlrunner records no
process, so a `running` one is taken as interrupted); its `param` holds the task's params (after
defaults and aliases), `_name`, `_output`, `_time` and `_scripts` (the shell line of each
command). Tasks are matched by their params, not by name: mlrunner's names keep spaces and other
characters that ours replace. These files are read, never written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Collection, Dict, List, Optional

from runner.errors import ConfigError
from runner.spec.yamlfile import parse_yaml_documents, read_yaml_text
from runner.store.state import TaskState, is_done, summarize
from runner.task import Status

PARAM, STAT = "param", "stat"
MAX_BYTES = 1 << 20
STATUSES = {"finished": Status.DONE, "failed": Status.FAILED, "running": Status.INTERRUPTED}
RECORDED_BY = "mlrunner"


@dataclass
class MlrunnerTask:
    """One task directory that mlrunner wrote."""

    dir: str
    name: str
    params: Dict[str, Any]  # the task's own params (no `_` ones)
    commands: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # entries as ours read
    problem: str = ""  # why its files could not be read

    @property
    def done(self) -> List[str]:
        return [c for c, e in self.commands.items() if is_done(e)]

    def state(self) -> TaskState:
        status = Status.UNREADABLE if self.problem else summarize(self.commands)
        return TaskState(self.name, status, dict(self.commands),
                         {**self.params, "_name": self.name}, self.dir,
                         self.problem or "written by mlrunner")


def is_mlrunner_dir(path: str) -> bool:
    """Whether mlrunner wrote this directory (its `stat` file is there)."""
    return os.path.isfile(os.path.join(path, STAT)) and not os.path.islink(
        os.path.join(path, STAT))


def read_mlrunner_dir(path: str) -> MlrunnerTask:
    """A task as mlrunner's `param` and `stat` in `path` describe it."""
    task = MlrunnerTask(path, os.path.basename(path), {})
    try:
        param = _load(os.path.join(path, PARAM)) or {}
        stat = _load(os.path.join(path, STAT)) or {}
        if not isinstance(param, dict) or not isinstance(stat, dict):
            raise ConfigError(f"{path}: mlrunner's param and stat are mappings")
    except (ConfigError, OSError, UnicodeDecodeError) as e:
        task.problem = str(e)
        return task
    task.name = str(param.get("_name") or task.name)
    task.params = {str(k): v for k, v in param.items() if not str(k).startswith("_")}
    scripts = param.get("_scripts") if isinstance(param.get("_scripts"), dict) else {}
    for command, word in stat.items():
        status = STATUSES.get(word) if isinstance(word, str) else None
        if status is None:
            continue
        entry = {"status": status.value, "code": 0 if status is Status.DONE else 1,
                 "recorded_by": RECORDED_BY}
        if isinstance(scripts.get(command), str):
            entry["command_line"] = scripts[command]
        task.commands[str(command)] = entry
    return task


def _load(path: str) -> Any:
    if os.path.islink(path):
        raise ConfigError(f"{path}: is a symbolic link; not read")
    if not os.path.exists(path):
        return None
    if os.path.getsize(path) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than an mlrunner file")
    documents = parse_yaml_documents(read_yaml_text(path), path)
    return documents[0][0] if documents else None


def params_key(params: Dict[str, Any], ignore: Collection[str] = ()) -> str:
    """What two tasks must share to be the same task: their own params (not the `_` ones, not
    the names in `ignore`: an alias group's name, which mlrunner does not record)."""
    own = {k: v for k, v in params.items() if not k.startswith("_") and k not in ignore}
    return json.dumps(own, sort_keys=True, default=str)


def index_mlrunner(output: str, ignore: Collection[str] = ()) -> Dict[str, MlrunnerTask]:
    """params key -> task, of every readable task directory mlrunner wrote in `output`."""
    found: Dict[str, MlrunnerTask] = {}
    for path in mlrunner_dirs(output):
        task = read_mlrunner_dir(path)
        if not task.problem:
            found.setdefault(params_key(task.params, ignore), task)
    return found


def mlrunner_dirs(output: str) -> List[str]:
    """The task directories of `output` that mlrunner wrote."""
    try:
        entries = sorted(os.scandir(output), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [e.path for e in entries if not e.name.startswith(".")
            and e.is_dir(follow_symlinks=False) and is_mlrunner_dir(e.path)]


def find(index: Dict[str, MlrunnerTask], params: Dict[str, Any],
         ignore: Collection[str] = ()) -> Optional[MlrunnerTask]:
    return index.get(params_key(params, ignore)) if index else None
