"""`--backend dask`: the tasks run on the workers of a dask.distributed scheduler, each by the
core's single-task executor (`run exec-task`, see `remote.run_task`), so the files on disk are
those of a local run, with the worker's host and name in `stat.json`.

The submitting `run` behaves like a local run: every task that is not done is submitted with
`client.submit(..., resources=..., pure=False)` (what it needs, see `needs`), and as each ends
its commands are read back from its files and reported through the events (start and done
lines, progress, summary). Ctrl-C cancels what has not started and stops what runs (recorded
`interrupted`); with `--detach` the tasks are handed to the scheduler with `fire_and_forget`,
which keeps them after the client disconnects, and `run` returns.

A worker that dies mid-task (kill -9, a machine lost) leaves the task stale `running` (its
guardian stops the command when the worker is gone, see `runner.execution.guardian`); dask
runs it again on another worker, up to its `allowed-failures` (3) losses per task, after which
it is reported as lost (`KilledWorker`). The per-task lock keeps two runs of a task from
overlapping, on any machine.

`run worker` (one dask worker per slot on a machine) is started through `run_workers`.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runner.backends.base import (CancelReport, Engine, RunReport, RunRequest,
                                  new_submission_id)
from runner.backends.dask.client import (check_address, connect, import_distributed,
                                         scheduler_address, submit, task_status, worker_offers)
from runner.backends.dask.follow import Follower
from runner.backends.dask.needs import check_fits, describe_resources, task_resources
from runner.backends.dask.records import (DASK_DIR, TABLE_SIZE, Submission, SubmissionPaths,
                                          latest_holders, read_submissions)
from runner.backends.dask.status import cancel_submission, merge_task_state
from runner.errors import BackendError, UsageError, choices_text
from runner.execution.executor import Events
from runner.store.base import TaskStore, make_task_table
from runner.store.files import make_directory, write_json
from runner.store.state import TaskState
from runner.task import Slot, Status


class DaskEngine(Engine):
    """Tasks on the workers of a dask.distributed scheduler (see the module's docstring)."""

    name = "dask"

    def __init__(self) -> None:
        self._stops = 0
        self._serving: Any = None  # `run worker`: the running set of workers

    def stop(self, kill: bool = False) -> None:
        """Ctrl-C: only counted here; the loop that follows the tasks acts on it (a signal
        handler must not wait on the client's event loop)."""
        self._stops = max(self._stops + 1, 2 if kill else 1)
        if self._serving is not None:
            self._serving.stop(kill=self._stops > 1)

    # -- run ------------------------------------------------------------------------------------

    def run(self, request: RunRequest, events: Events) -> RunReport:
        settings = request.settings
        if settings.get("wait"):
            raise UsageError("--wait is for the slurm engine: the dask engine follows its tasks "
                             "to the end unless --detach")
        max_parallel = settings.get("max_parallel")
        detach = bool(settings.get("detach"))
        if detach and max_parallel:
            raise UsageError("--max-parallel needs the submitting run to stay and hand out the "
                             "tasks; drop --detach or --max-parallel")
        address = scheduler_address(settings, request.profile)
        if request.dry_run:
            return RunReport(finished=False, lines=self._dry_run(request, address))
        if not request.tasks:
            return RunReport(finished=False, lines=["nothing to run: every selected command is "
                                                    "done (-f re-runs them)"])
        client = connect(address)
        try:
            offers = worker_offers(client)
            if not offers:
                raise BackendError(f"no worker is connected to the dask scheduler at {address}; "
                                   f"start workers with: run worker --scheduler {address} "
                                   f"(nothing was submitted)")
            needs = check_fits(request.tasks, offers, address)
            if request.prepare is not None:
                request.prepare()
            submission, paths = self._write(request, address, detach)
            if detach:
                return self._detach(client, request, submission, paths, needs)
            events.message(f"dask: {_count(len(request.tasks), 'task')} to {address} "
                           f"({_count(len(offers), 'worker')}), submission {submission.id}")
            follower = Follower(lambda: self._stops, client, request, submission, paths, needs,
                                events)
            return follower.follow(max_parallel)
        finally:
            client.close()

    def _dry_run(self, request: RunRequest, address: str) -> List[str]:
        lines = [f"would submit {len(request.tasks)} tasks to the dask scheduler at {address}"]
        for task in request.tasks:
            lines.append(f"  {task.name}: {describe_resources(task_resources(task), asked=True)}")
        return lines

    def _write(self, request: RunRequest, address: str,
               detach: bool) -> Tuple[Submission, SubmissionPaths]:
        """The submission's records: its task tables, `submission.json`, and the run table that
        lets `run status` show its tasks as pending before they start."""
        store = request.store
        paths = SubmissionPaths(store.root, new_submission_id(store, DASK_DIR, request.datetime))
        make_directory(paths.dir)
        info = {**request.info, "datetime": request.datetime, "force": request.force,
                "submission": paths.id}
        for start in range(0, len(request.tasks), TABLE_SIZE):
            write_json(paths.table(start // TABLE_SIZE),
                       make_task_table(store, request.tasks[start:start + TABLE_SIZE], info),
                       indent=None, sort_keys=False)
        submission = Submission(id=paths.id, token=uuid.uuid4().hex[:16], scheduler=address,
                                datetime=request.datetime, output=store.root, cwd=os.getcwd(),
                                tasks=[t.name for t in request.tasks], detached=detach,
                                submitted_at=time.time())
        write_json(paths.record, submission.to_json(), sort_keys=False)
        store.write_run_table(f"dask.{paths.id}", request.tasks, info)
        return submission, paths

    def _detach(self, client, request: RunRequest, submission: Submission,
                paths: SubmissionPaths, needs: Dict[str, Dict[str, float]]) -> RunReport:
        distributed = import_distributed()
        futures = submit(client, submission, paths, range(len(request.tasks)), request.tasks,
                         needs, request.grace)
        distributed.fire_and_forget(futures)
        root = request.store.root
        return RunReport(finished=False, lines=[
            f"submitted {_count(len(futures), 'task')} to {submission.scheduler} (submission "
            f"{submission.id}, records in {paths.dir}); they go on without this run: "
            f"run status -o {root} follows them, run cancel -o {root} stops them"])

    # -- where the tasks are --------------------------------------------------------------------

    def refine(self, store: TaskStore, states: List[TaskState]) -> List[TaskState]:
        """Add what the scheduler knows of tasks the files show as not started or running."""
        holders = latest_holders(read_submissions(store))
        open_states = [s for s in states if s.name in holders
                       and s.state in (Status.PENDING, Status.RUNNING)]
        by_submission: Dict[str, List[TaskState]] = {}
        for state in open_states:
            by_submission.setdefault(holders[state.name][0].id, []).append(state)
        for states_of in by_submission.values():
            submission = holders[states_of[0].name][0]
            keys = {s.name: submission.key(holders[s.name][1]) for s in states_of}
            try:
                known = task_status(submission.scheduler, list(keys.values()))
            except BackendError as e:
                for state in states_of:
                    state.note = f"dask: {e}; state from the files only"
                continue
            for state in states_of:
                merge_task_state(store, state, submission, known.get(keys[state.name]))
        return states

    # -- cancel ---------------------------------------------------------------------------------

    def cancel(self, store: TaskStore, submission: Optional[str] = None,
               wait: float = 0.0) -> CancelReport:
        submissions = read_submissions(store)
        if submission is not None:
            known = [s.id for s in submissions]
            submissions = [s for s in submissions if s.id == submission]
            if not submissions:
                raise UsageError(f"--submission {submission}: no such submission in "
                                 f"{os.path.join(store.root, DASK_DIR)}; submissions are "
                                 f"{choices_text(known)}")
        report = CancelReport()
        unfinished = {s.name for s in store.states() if s.state is not Status.DONE}
        for record in submissions:
            if unfinished.intersection(record.tasks):
                cancel_submission(record, report, wait)
        return report

    # -- run worker -----------------------------------------------------------------------------

    def run_workers(self, scheduler: str, slots: Sequence[Slot], gpu_memory: Optional[int],
                    events: Events, grace: float) -> Optional[str]:
        """`run worker`: one dask worker per slot until `stop` (Ctrl-C); None when stopped, or
        why the workers ended on their own."""
        from runner.backends.dask.nannies import WorkerSet

        check_address(scheduler)
        import_distributed()
        self._serving = WorkerSet(scheduler, slots, gpu_memory, events, grace)
        try:
            return self._serving.serve()
        finally:
            self._serving = None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
