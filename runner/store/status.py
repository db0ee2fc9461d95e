"""Every task's state in an output directory, read from its files alone (no daemon).

Safe while another invocation works on the directory: state files are replaced atomically, and
a `running` entry whose invocation is gone (on this host) is reported as interrupted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List

from runner.identity import is_alive
from runner.identity import HOST
from runner.store.files import read_json
from runner.store.sweep import PARAM_FILE, SLURM_DIR, STAT_FILE, Store, summarize_commands
from runner.task import Status


@dataclass
class TaskState:
    """One task as its files describe it."""

    name: str
    state: Status
    commands: Dict[str, Dict[str, Any]]  # command -> its stat.json entry (pending: status only)
    params: Dict[str, Any] = field(default_factory=dict)
    dir: str = ""
    note: str = ""  # what an engine (SLURM) adds: its job, state and reason

    def to_json(self) -> Dict[str, Any]:
        out = {"name": self.name, "state": self.state.value, "dir": self.dir,
               "commands": self.commands,
               "params": {k: v for k, v in self.params.items() if k != "_commands"}}
        if self.note:
            out["note"] = self.note
        return out


def _is_stale(entry: Dict[str, Any]) -> bool:
    """A `running` entry whose invocation is gone: on this host we can tell, elsewhere not."""
    if entry.get("host") != HOST:
        return False
    return not is_alive(entry.get("runner_pid"), entry.get("runner_start"))


def collect_states(store: Store) -> List[TaskState]:
    """The state of every task that has files or that an invocation set out to run."""
    states: Dict[str, TaskState] = {}
    for directory in store.iter_task_dirs():
        params = read_json(os.path.join(directory, PARAM_FILE)) or {}
        stat = read_json(os.path.join(directory, STAT_FILE)) or {}
        name = params.get("_name") or os.path.basename(directory)
        commands: Dict[str, Dict[str, Any]] = {}
        for command in list(stat) + [c for c in params.get("_commands", {}) if c not in stat]:
            entry = dict(stat.get(command) or {"status": Status.PENDING.value})
            entry.setdefault("status", "done" if entry.get("code") == 0 else "failed")
            if entry["status"] == Status.RUNNING.value and _is_stale(entry):
                entry["status"] = Status.INTERRUPTED.value
                entry["note"] = "the invocation running it is gone"
            commands[command] = entry
        states[name] = TaskState(name, _summarize(commands), commands, params, directory)
    for table in store.iter_run_tables():
        for task in table.get("tasks", []):
            known = states.get(task["name"])
            if known is None:
                commands = {c: {"status": Status.PENDING.value} for c in task["commands"]}
                states[task["name"]] = TaskState(task["name"], Status.PENDING, commands,
                                                 task.get("params", {}),
                                                 store.paths(task["name"]).dir)
            else:
                for command in task["commands"]:
                    known.commands.setdefault(command, {"status": Status.PENDING.value})
                known.state = _summarize(known.commands)
    result = sorted(states.values(), key=lambda s: s.name)
    if os.path.isdir(os.path.join(store.output, SLURM_DIR)):  # submitted with --backend slurm
        from runner.backends.slurm.engine import merge_queue_states

        result = merge_queue_states(store, result)
    return result


def _summarize(commands: Dict[str, Dict[str, Any]]) -> Status:
    return summarize_commands(commands, list(commands))


def count_states(states: List[TaskState]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for state in states:
        counts[state.state.value] = counts.get(state.state.value, 0) + 1
    return counts
