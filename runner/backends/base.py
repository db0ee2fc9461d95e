"""The interface every remote engine implements, and the registry that names them.

The local engine is the core itself (`runner.scheduler` with one worker per slot); a remote
engine hands the same tasks to something else and has each of them run by the core's
single-task executor there (`run exec-task`), so the files on disk do not depend on the engine.
An engine does three things: submit what is not done, tell where each submitted task is, and
stop what it submitted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from runner.errors import UsageError, choices_text

if TYPE_CHECKING:  # pragma: no cover
    from runner.spec.profiles import Profile
    from runner.store.status import TaskState
    from runner.store.sweep import Store
    from runner.task import Task

# engine name -> "module:class". `local` is the core's own scheduler, not a Backend.
BACKENDS: Dict[str, str] = {
    "slurm": "runner.backends.slurm.engine:SlurmBackend",
}


@dataclass
class SubmitRequest:
    """What to submit: tasks that still have work, and how they should run."""

    tasks: List["Task"]
    store: "Store"
    datetime: str
    profile: "Profile"
    config_path: str = ""
    force: bool = False
    max_parallel: Optional[int] = None
    grace: float = 10.0
    info: Dict[str, Any] = field(default_factory=dict)  # recorded with the submission
    prepare: Optional[Callable[[], None]] = None  # called once all checks passed, before writing


@dataclass
class SubmitReport:
    """What a submission did: which jobs hold which tasks, and what it left out and why."""

    submission: Optional[str]  # id, None when nothing was submitted
    directory: Optional[str]
    jobs: List[Dict[str, Any]] = field(default_factory=list)  # per array: job id, tasks, needs
    queued: Dict[str, str] = field(default_factory=dict)  # task -> job still queued, left out
    notes: List[str] = field(default_factory=list)
    scripts: List[str] = field(default_factory=list)  # script texts (for --dry-run)


@dataclass
class CancelReport:
    """The jobs a cancel stopped and the tasks they held."""

    jobs: List[str] = field(default_factory=list)
    tasks: List[str] = field(default_factory=list)
    left: List[str] = field(default_factory=list)  # jobs still in the queue after waiting


class Backend:
    """A remote engine. Subclasses set `name` and implement the three methods."""

    name = ""

    def submit(self, request: SubmitRequest, dry_run: bool = False) -> SubmitReport:
        """Submit the tasks that are not done and not already queued; nothing on error."""
        raise NotImplementedError

    def merge_states(self, store: "Store", states: List["TaskState"]) -> List["TaskState"]:
        """Refine the states read from the files with what the engine knows."""
        raise NotImplementedError

    def cancel(self, store: "Store", submission: Optional[str] = None,
               wait: float = 0.0) -> CancelReport:
        """Stop the jobs of the output directory's submissions (or of one)."""
        raise NotImplementedError


def load_backend(name: str) -> Backend:
    """An instance of the engine called `name`."""
    if name not in BACKENDS:
        raise UsageError(f"--backend {name}: unknown engine; choose 'local' or "
                         f"{choices_text(BACKENDS)}")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
