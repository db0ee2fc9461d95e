"""What a dask submission keeps in the task directory, so that `run status` and `run cancel`
find its tasks from anywhere::

    <root>/.dask/<id>/submission.json   the scheduler, the submission's token (its dask keys are
                                        runner-<token>-<i>), its tasks in order, whether detached
    <root>/.dask/<id>/tasks-<k>.json    task tables of TABLE_SIZE tasks: task i is entry
                                        i % TABLE_SIZE of table i // TABLE_SIZE
                                        (`run exec-task TABLE INDEX` runs it by hand)
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from runner.backends.dask.remote import key_of
from runner.backends.registry import ENGINES
from runner.errors import DamagedFileError, UnsafePathError
from runner.store.base import TaskStore
from runner.store.files import read_json

DASK_DIR = ENGINES["dask"].records
SUBMISSION_FILE = "submission.json"
TABLE_SIZE = 256  # tasks per task table (a worker reads each table it uses once)


@dataclass
class Submission:
    """One `run --backend dask` submission, as `submission.json` records it."""

    id: str
    token: str  # unique among the scheduler's submissions: keys and the event topic
    scheduler: str
    datetime: str
    output: str
    cwd: str
    tasks: List[str] = field(default_factory=list)
    detached: bool = False
    submitted_at: float = 0.0
    table_size: int = TABLE_SIZE
    version: int = 1

    def key(self, index: int) -> str:
        return key_of(self.token, index)

    def keys(self) -> Dict[str, str]:
        """task name -> its dask key."""
        return {name: self.key(i) for i, name in enumerate(self.tasks)}

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, path: str) -> "Submission":
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
            raise DamagedFileError(path, "not a dask submission record (expected a JSON object "
                                         "with a list 'tasks')")
        try:
            return cls(id=str(data["id"]), token=str(data["token"]),
                       scheduler=str(data["scheduler"]), datetime=str(data["datetime"]),
                       output=str(data.get("output", "")), cwd=str(data.get("cwd", "")),
                       tasks=[str(t) for t in data["tasks"]],
                       detached=bool(data.get("detached")),
                       submitted_at=float(data.get("submitted_at") or 0),
                       table_size=int(data.get("table_size") or TABLE_SIZE),
                       version=int(data.get("version") or 1))
        except (KeyError, TypeError, ValueError) as e:
            raise DamagedFileError(path, f"not a dask submission record ({e})") from None


class SubmissionPaths:
    """Every path of one submission directory."""

    def __init__(self, root: str, submission: str):
        self.id = submission
        self.dir = os.path.abspath(os.path.join(root, DASK_DIR, submission))
        self.record = os.path.join(self.dir, SUBMISSION_FILE)

    def table(self, number: int) -> str:
        return os.path.join(self.dir, f"tasks-{number}.json")

    def place(self, index: int, table_size: int = TABLE_SIZE) -> Tuple[str, int]:
        """(task table, index in it) of the submission's task `index`."""
        return self.table(index // table_size), index % table_size


def read_submissions(store: TaskStore, only: Optional[str] = None) -> List[Submission]:
    """The readable submissions of a task directory, oldest first (`only`: that one)."""
    base = os.path.join(store.root, DASK_DIR)
    try:
        names = sorted(os.listdir(base))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for name in names:
        if only is not None and name != only:
            continue
        path = os.path.join(base, name, SUBMISSION_FILE)
        try:
            found.append(Submission.from_json(read_json(path), path))
        except (DamagedFileError, UnsafePathError):
            continue
    return sorted(found, key=lambda s: (s.submitted_at, s.id))


def latest_holders(submissions: List[Submission]) -> Dict[str, Tuple[Submission, int]]:
    """task name -> (the latest submission that holds it, its index there)."""
    latest: Dict[str, Tuple[Submission, int]] = {}
    for submission in submissions:
        for index, name in enumerate(submission.tasks):
            latest[name] = (submission, index)
    return latest
