"""The records every layer shares: a task, a command's state, and what running a task produced."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


class Status(str, enum.Enum):
    """The state of one command of a task, as recorded in `stat.json`."""

    PENDING = "pending"  # never started (only ever reported, never written)
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"  # done earlier, not run again (only ever reported)
    LOCKED = "locked"  # another invocation holds the task (only ever reported)
    UNREADABLE = "unreadable"  # its state file is damaged (only ever reported)


@dataclass
class Task:
    """One point of the parameter space: its name, every param, and its rendered commands.

    `params` holds every param after packs and defaults plus the reserved `_name`, `_output` and
    `_datetime`; `commands` maps each selected template name to the shell text it runs, in
    template order.
    """

    name: str
    params: Dict[str, Any]
    commands: Dict[str, str]
    document: int = 1
    title: Optional[str] = None
    settings: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> Dict[str, Any]:
        out = {"name": self.name, "params": self.params, "commands": self.commands,
               "document": self.document, "title": self.title}
        if self.settings:
            out["settings"] = self.settings
        return out

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Task":
        return cls(name=data["name"], params=data["params"], commands=dict(data["commands"]),
                   document=data.get("document", 1), title=data.get("title"),
                   settings=data.get("settings") or {})


@dataclass(frozen=True)
class Slot:
    """A worker's place to run: its position in `resource` and the GPUs it binds (may be none)."""

    index: int
    gpus: Tuple[str, ...]

    @property
    def cuda_visible_devices(self) -> str:
        return ",".join(self.gpus)

    def __str__(self) -> str:
        return f"slot {self.index} (GPU {self.cuda_visible_devices})" if self.gpus else (
            f"slot {self.index} (no GPU)")


@dataclass
class CommandResult:
    """How one command ended."""

    command: str
    status: Status
    exit_status: Optional[int] = None
    signal: Optional[int] = None
    duration: float = 0.0
    log: Optional[str] = None
    attempts: int = 1  # how many times it ran (more than 1 with `retries`)
    err_log: Optional[str] = None  # stderr's log where the store keeps it apart from `log`
    timeout: Optional[float] = None  # the timeout it ran past (status timeout)
    killed_after: Optional[float] = None  # seconds from the timeout's TERM to KILL, if needed


@dataclass
class TaskResult:
    """What one task's turn on a slot produced: the commands it ran, or why it ran none."""

    task: Task
    slot: Optional[Slot]
    commands: List[CommandResult] = field(default_factory=list)
    status: Status = Status.DONE
    error: Optional[str] = None  # why it did not run at all (a link where its files go)

    @property
    def failed(self) -> Optional[CommandResult]:
        """The command that failed or timed out (None also when the task was refused)."""
        for result in self.commands:
            if result.status in (Status.FAILED, Status.TIMEOUT):
                return result
        return None

    @property
    def is_failure(self) -> bool:
        return self.error is not None or self.failed is not None
