"""`--backend dask`: the tasks run on the workers of a dask.distributed scheduler, each by the
core's single-task executor (`run exec-task`, see `remote.run_task`), so the files on disk are
those of a local run, with the worker's host and name in `stat.json`.

The submitting `run` behaves like a local run: every task that is not done is submitted with
`client.submit(..., resources=..., pure=False)` (what it needs, see `needs`), and as each ends
its commands are read back from its files and reported through the events (start and done
lines, progress, summary). Ctrl-C cancels what has not started and stops what runs (recorded
`interrupted`); with `--detach` the tasks are handed to the scheduler with `fire_and_forget`,
which keeps them after the client disconnects, and `run` returns.

A worker that dies mid-task (kill -9, a machine lost) leaves the task `interrupted` (its
exec-task stops the command when the worker is gone, see `runner.cli.exec_server`) or stale
`running`; dask runs it again on another worker, up to its `allowed-failures` (3) losses per
task, after which it is reported as lost (`KilledWorker`). The per-task lock keeps two runs of a
task from overlapping, on any machine.

`run worker` (one dask worker per slot on a machine) is started through `run_workers`.
"""

from __future__ import annotations

import os
import queue
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from runner.backends.base import CancelReport, Engine, RunReport, RunRequest
from runner.backends.dask import remote
from runner.backends.dask.needs import check_fits, describe_resources
from runner.backends.dask.records import (DASK_DIR, TABLE_SIZE, Submission, SubmissionPaths,
                                          latest_holders, new_submission_id, read_submissions)
from runner.errors import (BackendError, MissingDependencyError, StoreError, UsageError,
                           choices_text)
from runner.execution.executor import Events
from runner.identity import HOST
from runner.store.base import TaskStore, make_task_table
from runner.store.files import make_directory, write_json
from runner.store.state import TaskState, entry_status
from runner.task import CommandResult, Slot, Status, Task, TaskResult

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before giving up
STATUS_TIMEOUT = 3.0  # the same for `run status` (it falls back to the files)
POLL = 0.2  # seconds between looks at the stop switch and the cluster's events
SHOWN_TASKS = 3
# Where a key stands on the scheduler -> what `run status` says of a task not yet started there.
_WAITING = {"released": "submitted", "waiting": "waiting", "queued": "queued",
            "no-worker": "waiting: no connected worker offers what it needs",
            "processing": "handed to a worker"}


@dataclass(frozen=True)
class WorkerSlot(Slot):
    """The slot a task ran on: a dask worker of `run worker`."""

    worker: str = ""

    def __str__(self) -> str:
        return self.worker or super().__str__()


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise MissingDependencyError("distributed", "dask", "the dask engine") from None
    return distributed


_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?(\[[0-9a-fA-F:.]+\]|[^\s/:\[\]]+):\d+$")


def scheduler_address(settings: Dict[str, Any], profile=None) -> str:
    """--scheduler, else the profile's `scheduler`, else $DASK_SCHEDULER_ADDRESS."""
    address = (settings.get("scheduler") or (getattr(profile, "scheduler", None) if profile
                                             else None) or os.environ.get(SCHEDULER_VARIABLE))
    if not address:
        raise UsageError("the dask engine needs its scheduler's address: --scheduler "
                         "tcp://HOST:8786, a profile with 'scheduler:', or "
                         f"{SCHEDULER_VARIABLE}; start a scheduler with `dask scheduler`")
    return check_address(address)


def check_address(address: str) -> str:
    """The address as given, if it has the shape of one (UsageError otherwise)."""
    if not _ADDRESS.match(address):
        raise UsageError(f"scheduler {address!r}: expected an address such as tcp://head:8786 "
                         f"(the one `dask scheduler` prints)")
    return address


def connect_timeout(at_most: float = CONNECT_TIMEOUT) -> float:
    """Seconds to keep trying to reach a scheduler: dask's `distributed.comm.timeouts.connect`
    (e.g. $DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT), at most `at_most`."""
    import dask
    from dask.utils import parse_timedelta

    configured = dask.config.get("distributed.comm.timeouts.connect", None)
    return min(at_most, parse_timedelta(configured, "s")) if configured else at_most


def connect(address: str, timeout: Optional[float] = None):
    """A dask Client of the scheduler at `address`; BackendError when it cannot be reached."""
    distributed = import_distributed()
    try:
        return distributed.Client(address, timeout=timeout or connect_timeout(),
                                  set_as_default=False)
    except (OSError, ValueError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise BackendError(f"cannot reach the dask scheduler at {address} ({reason}); start one "
                           f"with `dask scheduler` and pass its address, e.g. --scheduler "
                           f"tcp://HOST:8786") from None


def worker_offers(client) -> Dict[str, Dict[str, Any]]:
    """worker name -> its resources, for every worker the scheduler knows."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return {str(w.get("name", address)): dict(w.get("resources") or {})
            for address, w in workers.items()}


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
            events.message(f"dask: {len(request.tasks)} tasks to {address} ({len(offers)} "
                           f"workers), submission {submission.id}")
            if detach:
                return self._detach(client, request, submission, paths, needs)
            return Follower(self, client, request, submission, paths, needs, events).follow(
                max_parallel)
        finally:
            client.close()

    def _dry_run(self, request: RunRequest, address: str) -> List[str]:
        from runner.backends.dask.needs import task_resources

        lines = [f"would submit {len(request.tasks)} tasks to the dask scheduler at {address}"]
        for task in request.tasks:
            lines.append(f"  {task.name}: {describe_resources(task_resources(task), asked=True)}")
        return lines

    def _write(self, request: RunRequest, address: str,
               detach: bool) -> Tuple[Submission, SubmissionPaths]:
        """The submission's records: its task tables, `submission.json`, and the run table that
        lets `run status` show its tasks as pending before they start."""
        store = request.store
        paths = SubmissionPaths(store.root, new_submission_id(store, request.datetime))
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
            f"submitted {len(futures)} tasks to {submission.scheduler} (submission "
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


def on_worker(name: str):
    """A function that calls `remote.<name>` on the worker. It is pickled by value (a nested
    function), so the scheduler, which reads every task it is sent, needs only dask installed,
    not the runner."""

    def call(*args: Any, **kwargs: Any) -> Any:
        from runner.backends.dask import remote as on_the_worker

        return getattr(on_the_worker, name)(*args, **kwargs)

    return call


RUN_TASK = on_worker("run_task")
STOP_SUBMISSION = on_worker("stop_submission")
RUNNING_TASKS = on_worker("running_tasks")


def submit(client, submission: Submission, paths: SubmissionPaths, indices: Sequence[int],
           tasks: Sequence[Task], needs: Dict[str, Dict[str, float]], grace: float) -> list:
    """The tasks `indices` of a submission as dask futures (in that order): `remote.run_task`
    with each task's resources (one `client.map` per set of resources: the scheduler gets a
    few graphs, not one per task)."""
    groups: Dict[Tuple, List[int]] = {}
    for index in indices:
        groups.setdefault(tuple(sorted(needs[tasks[index].name].items())), []).append(index)
    futures: Dict[int, Any] = {}
    for resources, members in groups.items():
        places = [paths.place(i, submission.table_size) for i in members]
        mapped = client.map(RUN_TASK, [p[0] for p in places], [p[1] for p in places],
                            [tasks[i].name for i in members], key=[submission.key(i)
                                                                   for i in members],
                            pure=False, resources=dict(resources), token=submission.token,
                            submission=submission.id, grace=grace)
        futures.update(zip(members, mapped))
    return [futures[i] for i in indices]


class Follower:
    """Follows a submission's futures to the end for the console, as a local run would."""

    def __init__(self, engine: DaskEngine, client, request: RunRequest, submission: Submission,
                 paths: SubmissionPaths, needs: Dict[str, Dict[str, float]], events: Events):
        self.engine = engine
        self.client = client
        self.request = request
        self.submission = submission
        self.paths = paths
        self.needs = needs
        self.events = events
        self.store = request.store
        self.inbox: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        self.futures: Dict[str, Any] = {}  # key -> future, while it has not ended
        self.index_of: Dict[str, int] = {}
        self.started: Dict[int, WorkerSlot] = {}
        self.finished: Set[int] = set()
        self.names: Dict[str, str] = {}  # worker address -> name
        self.lost: List[str] = []
        self.report = RunReport()

    def follow(self, max_parallel: Optional[int]) -> RunReport:
        client, tasks = self.client, self.request.tasks
        self.names = {address: str(w.get("name", address)) for address, w in
                      client.scheduler_info(n_workers=-1).get("workers", {}).items()}
        client.subscribe_topic(remote.topic_of(self.submission.token),
                               lambda event: self.inbox.put(("started", event[1])))
        client.subscribe_topic("all", lambda event: self.inbox.put(("cluster", event[1])))
        limit = max_parallel or len(tasks)
        next_index = 0
        stopped_at = 0  # how many Ctrl-C this loop has acted on
        tick = getattr(self.events, "tick_every", None)
        last_tick = time.monotonic()
        try:
            while len(self.finished) < len(tasks) or self.futures:
                if not stopped_at and next_index < len(tasks) and len(self.futures) < limit:
                    batch = range(next_index, min(len(tasks), next_index + limit
                                                  - len(self.futures)))
                    self._submit(batch)
                    next_index = batch.stop
                if self.engine._stops > stopped_at:
                    stopped_at = self._stop(stopped_at)
                    if stopped_at and not self.futures:
                        break
                try:
                    kind, item = self.inbox.get(timeout=POLL)
                except queue.Empty:
                    kind, item = "", None
                if kind == "done":
                    self._ended(item)
                elif kind == "started":
                    self._started(item)
                elif kind == "cluster":
                    self._cluster(item)
                if tick and time.monotonic() - last_tick >= tick:
                    last_tick = time.monotonic()
                    self.events.tick()
                if client.status in ("closing", "closed"):
                    raise BackendError(f"lost the connection to the dask scheduler at "
                                       f"{self.submission.scheduler}; tasks already handed to "
                                       f"workers may go on: run status -o {self.store.root}")
        except BackendError as e:
            self.report.error = e
        finally:
            for topic in (remote.topic_of(self.submission.token), "all"):
                try:
                    client.unsubscribe_topic(topic)
                except (ValueError, KeyError):
                    pass
        self.report.not_started = len(tasks) - len(self.report.results)
        self.report.lines.extend(self.lost)
        return self.report

    def _submit(self, indices: Sequence[int]) -> None:
        futures = submit(self.client, self.submission, self.paths, indices, self.request.tasks,
                         self.needs, self.request.grace)
        for index, future in zip(indices, futures):
            self.futures[future.key] = future
            self.index_of[future.key] = index
            future.add_done_callback(lambda f: self.inbox.put(("done", f)))

    # -- what comes in --------------------------------------------------------------------------

    def _started(self, message: Dict[str, Any]) -> None:
        index = self.index_of.get(message.get("key"))
        if index is None or index in self.finished or index in self.started:
            return
        slot = self.started[index] = make_slot(message)
        task = self.request.tasks[index]
        command = next(iter(task.commands), "")
        self.events.command_started(task, slot, command, self.store.log_paths(
            task, command, self.request.datetime)[0] if command else "")

    def _cluster(self, message: Dict[str, Any]) -> None:
        action = message.get("action")
        address = message.get("worker")
        if action == "add-worker":
            self.names = {a: str(w.get("name", a)) for a, w in
                          self.client.scheduler_info(n_workers=-1).get("workers", {}).items()}
            return
        if action != "remove-worker":
            return
        ours = [self.request.tasks[self.index_of[k]].name for k in message.get(
            "processing-tasks", ()) if k in self.index_of and k in self.futures]
        if not ours:
            return
        name = self.names.get(address, address)
        how = "left" if message.get("expected") else "was lost"
        line = (f"worker {name} {how} while it held {_some(ours)}; dask runs "
                f"{'it' if len(ours) == 1 else 'them'} on another worker")
        self.lost.append(line)
        self.events.notice(line)

    def _ended(self, future) -> None:
        key = future.key
        if self.futures.pop(key, None) is None:
            return
        index = self.index_of[key]
        task = self.request.tasks[index]
        self.finished.add(index)
        status = future.status
        result: Optional[TaskResult]
        if status == "finished":
            recorded = recorded_run(self.store, task, self.submission.id)
            if recorded.commands and recorded.complete:  # the files say it all: no round trip
                result = self._result(task, recorded, recorded.slot or self.started.get(index),
                                      Status.DONE)
            else:  # why it ran nothing: ask the worker's answer
                result = self._from_outcome(task, recorded, future.result())
        elif status == "error":
            result = self._from_error(task, index, future.exception())
        else:  # cancelled: by Ctrl-C here, or by `run cancel` elsewhere
            recorded = recorded_run(self.store, task, self.submission.id)
            if not recorded.commands and index not in self.started:
                return  # never started: counted as not started
            result = self._result(task, recorded, recorded.slot or self.started.get(index),
                                  Status.INTERRUPTED)
        self.report.results.append(result)
        finished = getattr(self.events, "task_finished", None)
        if finished is not None:
            finished(result)

    def _from_outcome(self, task: Task, recorded: "RecordedRun", outcome: Dict[str, Any]
                      ) -> Optional[TaskResult]:
        slot = make_slot(outcome)
        if outcome.get("cancelled"):
            return None
        if outcome.get("refused"):
            self.events.task_refused(task, slot, outcome["refused"])
            return TaskResult(task, slot, status=Status.FAILED, error=outcome["refused"])
        code = outcome.get("exit")
        result = self._result(task, recorded, slot,
                              Status.INTERRUPTED if code == 130 else Status.SKIPPED)
        if code not in (0, 1, 130):
            last = (outcome.get("output") or "").strip().splitlines()[-1:] or [""]
            why = (f"run exec-task exited with status {code} on {slot}: {last[0]}" if code
                   is not None and code >= 0 else
                   f"run exec-task was stopped on {slot} ({last[0] or f'signal {-(code or 0)}'})")
            self.events.task_refused(task, slot, why)
            result.error, result.status = why, Status.FAILED
        return result

    def _from_error(self, task: Task, index: int, error: BaseException) -> TaskResult:
        distributed = import_distributed()
        if isinstance(error, distributed.KilledWorker):
            last = getattr(error.last_worker, "name", None) or getattr(
                error.last_worker, "address", "?")
            why = (f"its workers died {error.allowed_failures + 1} times while running it "
                   f"(dask's allowed-failures is {error.allowed_failures}); the last was {last}; "
                   f"run again to retry it")
        else:
            why = (f"the dask task failed: {type(error).__name__}: "
                   f"{(str(error).strip().splitlines() or [''])[0]}")
        recorded = recorded_run(self.store, task, self.submission.id)
        slot = recorded.slot or self.started.get(index) or WorkerSlot(0, ())
        result = self._result(task, recorded, slot, Status.INTERRUPTED)
        self.events.task_refused(task, slot, why)
        result.error, result.status = why, Status.INTERRUPTED
        return result

    def _result(self, task: Task, recorded: "RecordedRun", slot: Optional[WorkerSlot],
                none: Status) -> TaskResult:
        """The task's result from the commands this submission ran (each reported as it ended);
        `none` when it ran none."""
        result = TaskResult(task, slot, status=none)
        for command in recorded.commands:
            self.events.command_ended(task, slot or WorkerSlot(0, ()), command)
            result.commands.append(command)
        if recorded.commands:
            failed = next((c for c in recorded.commands if c.status is not Status.DONE), None)
            result.status = failed.status if failed is not None else Status.DONE
        return result

    # -- Ctrl-C ---------------------------------------------------------------------------------

    def _stop(self, stopped_at: int) -> int:
        """First Ctrl-C: the workers stop this submission's running tasks and start no more of
        it, the rest is cancelled, and we wait until nothing of it runs (a second Ctrl-C kills
        what still runs)."""
        stops = self.engine._stops
        for _ in range(stops - stopped_at):
            self.client.run(STOP_SUBMISSION, self.submission.token, on_error="return")
        if not stopped_at:
            waiting = [f for f in self.futures.values()]
            self.client.cancel(waiting)
            self._await_remote()
        return stops

    def _await_remote(self) -> None:
        """Until no worker runs a task of this submission (its exec-task recorded the end)."""
        handled = self.engine._stops
        while True:
            answers = self.client.run(RUNNING_TASKS, self.submission.token,
                                      on_error="return")
            if not any(isinstance(a, list) and a for a in answers.values()):
                break
            if self.engine._stops > handled:
                handled = self.engine._stops
                self.client.run(STOP_SUBMISSION, self.submission.token,
                                on_error="return")
            time.sleep(POLL)
        # the futures cancelled above end as `cancelled`; report those that had started
        while self.futures:
            try:
                kind, item = self.inbox.get(timeout=POLL)
            except queue.Empty:
                for future in list(self.futures.values()):
                    if future.done():
                        self._ended(future)
                continue
            if kind == "done":
                self._ended(item)
            elif kind == "started":
                self._started(item)


def make_slot(message: Dict[str, Any]) -> WorkerSlot:
    """The slot of a task's outcome (`remote.run_task`) or of its start event."""
    gpus = str(message.get("gpus") or "")
    slot = message.get("slot")
    return WorkerSlot(slot if isinstance(slot, int) else 0,
                      tuple(g for g in gpus.split(",") if g),
                      str(message.get("name") or ""))


@dataclass
class RecordedRun:
    """What a task's `stat.json` says this submission ran: the commands, as they ended, the slot
    they ran on, and whether every one of them ended (none left `running`)."""

    commands: List[CommandResult]
    slot: Optional[WorkerSlot] = None
    complete: bool = True


def recorded_run(store: TaskStore, task: Task, submission: str) -> RecordedRun:
    try:
        state = store.state_of(task.name)
    except (StoreError, OSError):  # unreadable: the commands are not known
        return RecordedRun([], complete=False)
    run = RecordedRun([])
    for name in task.commands:
        entry = state.commands.get(name)
        if not isinstance(entry, dict) or entry.get("dask_submission") != submission:
            continue
        status = entry_status(entry)
        if status is Status.RUNNING:
            status, run.complete = Status.INTERRUPTED, False
        if run.slot is None:
            run.slot = make_slot({"name": entry.get("dask_worker"), "slot": entry.get("slot"),
                                  "gpus": entry.get("gpus")})
        run.commands.append(CommandResult(
            command=name, status=status, exit_status=entry.get("exit_status"),
            signal=entry.get("signal"), duration=entry.get("duration") or 0.0,
            log=state.log_of(entry),
            attempts=entry.get("attempt") or 1 if isinstance(entry.get("attempts"), list) else 1,
            err_log=state.log_of(entry, "err_log"),
            timeout=entry.get("timeout") if status is Status.TIMEOUT else None,
            killed_after=entry.get("killed_after")))
    return run


def task_status(address: str, keys: List[str], timeout: Optional[float] = None
                ) -> Dict[str, Optional[str]]:
    """key -> where it stands on the scheduler (None: the scheduler does not hold it)."""
    import asyncio

    import_distributed()
    from distributed.core import rpc

    timeout = timeout or connect_timeout(STATUS_TIMEOUT)

    async def ask() -> Dict[str, Optional[str]]:
        scheduler = rpc(address, timeout=timeout)
        try:
            return await asyncio.wait_for(scheduler.get_task_status(keys=keys), timeout)
        finally:
            await scheduler.close_rpc()

    try:
        return asyncio.run(ask())
    except (OSError, asyncio.TimeoutError, ValueError, TypeError) as e:
        raise BackendError(f"the scheduler at {address} does not answer "
                           f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


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
            + (f"; stopping {len(running)} running: {_some(running)}" if running else ""))
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


def _some(names: List[str]) -> str:
    shown = ", ".join(names[:SHOWN_TASKS])
    return shown + (f" and {len(names) - SHOWN_TASKS} more" if len(names) > SHOWN_TASKS else "")
