"""What the state files say: "is this command done?", a task's state, and damaged files.

This is the one place that decides whether a command is done, for every kind of task directory
(a sweep's `stat.json`, a runfile's `job.json` and `metadata.json`, the seed's and batchrun's
older formats), and the one place that says what shape a state file must have to be trusted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from runner.errors import DamagedFileError
from runner.identity import HOST, is_alive
from runner.store.files import encode_params
from runner.task import Status

# The statuses a command's entry may hold on disk.
RECORDED = frozenset(s.value for s in (Status.RUNNING, Status.DONE, Status.FAILED,
                                       Status.INTERRUPTED, Status.TIMEOUT))
# Which command state wins when a task's commands disagree (the first one present).
PRECEDENCE = (Status.UNREADABLE, Status.RUNNING, Status.FAILED, Status.TIMEOUT,
              Status.INTERRUPTED, Status.PENDING)


def is_done(entry: Optional[Dict[str, Any]]) -> bool:
    """Whether a command's recorded entry says it succeeded.

    Ours say `status: done` (with `code: 0` where written); the seed's files say only `code: 0`;
    batchrun's `metadata.json` says `status: 0` (its exit code).
    """
    if not isinstance(entry, dict):
        return False
    status = entry.get("status")
    if status is None:
        return entry.get("code") == 0
    if status == "done":
        return entry.get("code", 0) == 0
    return type(status) is int and status == 0


def params_digest(params: Dict[str, Any]) -> str:
    """A short digest of a task's params (the reserved `_` ones left out), recorded with each
    command so that a later run can tell whether the params it ran with have changed."""
    own = {k: v for k, v in params.items() if not k.startswith("_")}
    return hashlib.sha256(encode_params(own)).hexdigest()[:16]


def what_changed(entry: Dict[str, Any], command: str, digest: str) -> List[str]:
    """What differs between a done command's entry and what would run now: 'params' and/or
    'command' (entries written before these were recorded cannot tell, and say nothing)."""
    changes = []
    if entry.get("params", digest) != digest:
        changes.append("params")
    if entry.get("command", command) != command:
        changes.append("command")
    return changes


def entry_status(entry: Dict[str, Any]) -> Status:
    """The status of a command's entry (the seed's `code`-only entries included)."""
    status = entry.get("status")
    if status is None:
        return Status.DONE if entry.get("code") == 0 else Status.FAILED
    if type(status) is int:
        return Status.DONE if status == 0 else Status.FAILED
    return Status(status)


def summarize(commands: Dict[str, Dict[str, Any]]) -> Status:
    """One state for a task from its commands' entries (running > failed > ... > done)."""
    states = {entry_status(e) if e else Status.PENDING for e in commands.values()}
    for status in PRECEDENCE:
        if status in states:
            return status
    return Status.DONE


def parse_stat(data: Any, path: str) -> Dict[str, Dict[str, Any]]:
    """`stat.json`'s content as command -> entry; DamagedFileError when it has another shape."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DamagedFileError(path, f"expected a JSON object of command -> entry, found "
                                     f"{_kind(data)}")
    for command, entry in data.items():
        check_entry(entry, path, f"command '{command}'")
    return data


def check_entry(entry: Any, path: str, what: str) -> None:
    """DamagedFileError unless `entry` is a command's entry of a known status."""
    if not isinstance(entry, dict):
        raise DamagedFileError(path, f"{what}: expected an object, found {_kind(entry)}")
    status = entry.get("status")
    if status is not None and status not in RECORDED and type(status) is not int:
        raise DamagedFileError(path, f"{what}: unknown status {status!r}")
    if status is None and type(entry.get("code")) is not int:
        raise DamagedFileError(path, f"{what}: neither a status nor an exit code")


def parse_params(data: Any, path: str) -> Dict[str, Any]:
    """`param.json`'s content; DamagedFileError when it is not an object or `_name` is no name."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DamagedFileError(path, f"expected a JSON object of params, found {_kind(data)}")
    if "_name" in data and not isinstance(data["_name"], str):
        raise DamagedFileError(path, f"'_name' is {_kind(data['_name'])}, not a name")
    commands = data.get("_commands")
    if commands is not None and not isinstance(commands, dict):
        raise DamagedFileError(path, f"'_commands' is {_kind(commands)}, not an object")
    return data


def is_stale(entry: Dict[str, Any]) -> bool:
    """A `running` entry whose invocation is gone. On this host we can tell (the invocation's
    pid and start time); on another host we cannot, and trust the entry."""
    if entry.get("host") != HOST:
        return False
    started = entry.get("runner_start")
    return started is None or not is_alive(entry.get("runner_pid"), started)


@dataclass
class TaskState:
    """One task as its files describe it."""

    name: str
    state: Status
    commands: Dict[str, Dict[str, Any]]  # command -> its entry (pending: status only)
    params: Dict[str, Any] = field(default_factory=dict)
    dir: str = ""
    note: str = ""  # why it is unreadable, or what an engine adds (its job, state and reason)
    changed: Dict[str, List[str]] = field(default_factory=dict)  # done command -> what changed

    @property
    def label(self) -> str:
        """The state as `run status` shows it: `done (changed)` for work done with other
        params or another command than the last run would use."""
        return f"{self.state.value} (changed)" if self.changed else self.state.value

    def to_json(self) -> Dict[str, Any]:
        out = {"name": self.name, "state": self.state.value, "dir": self.dir,
               "commands": self.commands,
               "params": {k: v for k, v in self.params.items() if k != "_commands"}}
        if self.note:
            out["note"] = self.note
        if self.changed:
            out["changed"] = self.changed
        return out

    def log_of(self, entry: Dict[str, Any], key: str = "log") -> Optional[str]:
        """Where a command's log is: as recorded (relative to where the run was started), or,
        from elsewhere, the file of that name in the task's directory."""
        path = entry.get(key)
        if not isinstance(path, str) or not path:
            return None
        if os.path.isabs(path) or os.path.lexists(path) or not self.dir:
            return path
        beside = os.path.join(self.dir, os.path.basename(path))
        return beside if os.path.lexists(beside) else path

    def resummarize(self) -> None:
        if self.state is not Status.UNREADABLE:
            self.state = summarize(self.commands)


def count_states(states: List[TaskState]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for state in states:
        counts[state.state.value] = counts.get(state.state.value, 0) + 1
    return counts


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"a bool ({value})"
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: f"a string ({str(value)[:40]!r})"}.get(
        type(value), f"a {type(value).__name__} ({value!r})")
