"""The one interface every engine implements, and the registry that names the engines.

An engine runs the tasks of a plan that still have work left. Every engine has each task run by
the core's single-task executor (`runner.execution.executor`), here or on the machine that got
it (`run exec-task`), so the files on disk do not depend on the engine. An engine:

* `run(request, events)`: runs the tasks and reports each as it ends (interactive engines:
  local, dask), or submits them and returns (fire-and-forget: SLURM; with `--wait` it follows
  them to the end and reports like the others);
* `stop(kill)`: what Ctrl-C asks while `run` runs (a second Ctrl-C: `kill=True`);
* `refine(store, states)`: adds what it knows to the states read from the files (`run status`);
* `cancel(store)`: stops what it runs or ran for a task directory, from anywhere (`run cancel`).

The CLI picks an engine by name through the registry (`runner.backends.registry`) and never
imports a concrete engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from runner.errors import UsageError
from runner.execution.executor import Events, ExecOptions
from runner.task import Slot, Task, TaskResult

if TYPE_CHECKING:  # pragma: no cover
    from runner.spec.profiles import Profile
    from runner.store.base import TaskStore
    from runner.store.state import TaskState


@dataclass
class RunRequest:
    """What to run: a store's tasks that still have work, and how."""

    store: "TaskStore"
    tasks: List[Task]
    datetime: str
    skipped: int = 0  # tasks done earlier, for the summary
    grace: float = 10.0
    force: bool = False
    profile: Optional["Profile"] = None
    slots: Sequence[Slot] = ()  # the local engine's workers (or none, with an admission)
    admission: Any = None  # the local engine's GPU pool
    exec_options: ExecOptions = field(default_factory=ExecOptions)
    settings: Dict[str, Any] = field(default_factory=dict)  # engine options: wait, max_parallel
    info: Dict[str, Any] = field(default_factory=dict)  # recorded in task tables
    prepare: Optional[Callable[[], None]] = None  # called once every check passed, before writing
    dry_run: bool = False


@dataclass
class RunReport:
    """What a run did: how each task ended (when the engine followed them to the end), or what it
    submitted (lines to show), and why it stopped early."""

    results: List[TaskResult] = field(default_factory=list)
    finished: bool = True  # False: submitted, the tasks go on without us
    not_started: int = 0
    lines: List[str] = field(default_factory=list)
    error: Optional[Exception] = None  # what stopped the run (a full disk), after its summary


@dataclass
class CancelReport:
    """What a cancel stopped: a line per thing stopped, the tasks they held, what is left."""

    lines: List[str] = field(default_factory=list)
    tasks: List[str] = field(default_factory=list)
    left: List[str] = field(default_factory=list)


class Engine:
    """An engine (see the module's docstring). Subclasses set `name`."""

    name = ""

    def run(self, request: RunRequest, events: Events) -> RunReport:
        raise NotImplementedError

    def stop(self, kill: bool = False) -> None:
        """Stop what `run` started: cancel what has not started, interrupt what runs."""

    def refine(self, store: "TaskStore", states: List["TaskState"]) -> List["TaskState"]:
        return states

    def cancel(self, store: "TaskStore", submission: Optional[str] = None,
               wait: float = 0.0) -> CancelReport:
        """Stop what this engine runs for the task directory (only `submission`, if named)."""
        raise NotImplementedError

    def launch_script(self, profile: "Profile", command_line: str, runs: int, dry_run: bool,
                      events: Events) -> RunReport:
        """`run launch-script`: run one shell line `runs` times with a profile (an array of
        `runs` on a cluster); with `dry_run`, only the lines saying what would run."""
        raise UsageError(f"launch-script cannot run on the {self.name} engine")


def new_submission_id(store: "TaskStore", records: str, datetime: str) -> str:
    """A new submission's name under an engine's records directory (`records`, relative to the
    task directory): `<datetime>`, or `<datetime>.<n>` when that second already has one."""
    base = os.path.join(store.root, records)
    candidate, n = datetime, 1
    while os.path.exists(os.path.join(base, candidate)):
        n += 1
        candidate = f"{datetime}.{n}"
    return candidate
