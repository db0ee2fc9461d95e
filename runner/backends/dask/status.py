"""What `run status` and `run cancel` add for a dask submission: where its keys stand on the
scheduler, merged into the states read from the files, and cancelling what it still holds."""

from __future__ import annotations

import time
from typing import List, Optional

from runner.backends.base import CancelReport
from runner.backends.dask.client import (RUNNING_TASKS, STOP_SUBMISSION, connect,
                                         import_distributed, task_status)
from runner.backends.dask.follow import POLL, some_names
from runner.backends.dask.records import Submission
from runner.errors import BackendError
from runner.identity import HOST
from runner.store.base import TaskStore
from runner.store.state import TaskState
from runner.task import Status

# Where a key stands on the scheduler -> what `run status` says of a task not yet started there.
_WAITING = {"released": "submitted", "waiting": "waiting", "queued": "queued",
            "no-worker": "waiting: no connected worker offers what it needs",
            "processing": "handed to a worker"}


def merge_task_state(store: TaskStore, state: TaskState, submission: Submission,
                     where: Optional[str]) -> None:
    """One task's state from its files (the truth) and where its key stands on the scheduler."""
    if state.state is Status.PENDING:
        if where in _WAITING:
            state.note = f"dask: {_WAITING[where]} (submission {submission.id})"
        else:
            state.state = Status.INTERRUPTED
            state.note = (f"dask: submission {submission.id} ended without running it "
                          f"(cancelled, or its client or scheduler went away); run again")
        return
    running = [e for e in state.commands.values() if isinstance(e, dict)
               and e.get("status") == Status.RUNNING.value
               and e.get("dask_submission") == submission.id]
    worker = next((e.get("dask_worker") for e in running), None)
    if where == "processing" or not running:
        if worker:
            state.note = f"dask: running on {worker}"
        return
    fresh = store.state_of(state.name)  # it may have ended since the files were first read
    for command, entry in fresh.commands.items():
        if command in state.commands:
            state.commands[command] = dict(entry)
    state.resummarize()
    if state.state is not Status.RUNNING:
        return
    for entry in state.commands.values():
        if entry.get("status") == Status.RUNNING.value and entry.get("host") != HOST:
            entry.update(status=Status.INTERRUPTED.value, code=1,
                         note=f"dask: its worker {entry.get('dask_worker')} is gone")
    state.resummarize()
    state.note = f"dask: the scheduler no longer runs it; its worker {worker} is gone"


def cancel_submission(submission: Submission, report: CancelReport, wait: float) -> None:
    """Cancel what the scheduler still holds of a submission; the workers stop what runs."""
    keys = submission.keys()
    try:
        where = task_status(submission.scheduler, list(keys.values()))
    except BackendError as e:
        report.lines.append(f"dask submission {submission.id}: {e}; its tasks were not "
                            f"cancelled")
        return
    live = [k for k, w in where.items() if w not in (None, "memory", "erred", "forgotten")]
    if not live:
        return
    distributed = import_distributed()
    client = connect(submission.scheduler)
    try:
        futures = [distributed.Future(key, client) for key in live]
        client.cancel(futures, force=True)
        answers = client.run(STOP_SUBMISSION, submission.token, on_error="return")
        running = sorted({t for a in answers.values() if isinstance(a, list) for t in a})
        names = {k: n for n, k in keys.items()}
        report.tasks.extend(sorted({names[k] for k in live} | set(running)))
        report.lines.append(
            f"cancelled {len(live)} dask task{'s' if len(live) != 1 else ''} of submission "
            f"{submission.id} on {submission.scheduler}"
            + (f"; stopping {len(running)} running: {some_names(running)}" if running else ""))
        deadline = time.monotonic() + wait
        left: List[str] = []
        while True:
            answers = client.run(RUNNING_TASKS, submission.token, on_error="return")
            left = [f"{task} on {worker}" for worker, a in answers.items()
                    if isinstance(a, list) for task, _ in a]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        report.left.extend(left)
    finally:
        client.close()
