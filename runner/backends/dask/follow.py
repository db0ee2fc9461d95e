"""Following a submission's futures to the end for the console, as a local run would: a line
per finished command (read from the task's files when its future ends), the progress line,
which workers were lost, and Ctrl-C."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from runner.backends.base import RunReport, RunRequest
from runner.backends.dask import remote
from runner.backends.dask.client import (RUNNING_TASKS, STOP_SUBMISSION, import_distributed,
                                         submit)
from runner.backends.dask.records import Submission, SubmissionPaths
from runner.errors import BackendError, StoreError
from runner.execution.executor import Events
from runner.store.base import TaskStore
from runner.store.state import entry_status
from runner.task import CommandResult, Slot, Status, Task, TaskResult

POLL = 0.2  # seconds between looks at the stop switch and the cluster's events
SHOWN_TASKS = 3


@dataclass(frozen=True)
class WorkerSlot(Slot):
    """The slot a task ran on: a dask worker of `run worker`."""

    worker: str = ""

    def __str__(self) -> str:
        return self.worker or super().__str__()


class Follower:
    """Follows a submission's futures to the end for the console, as a local run would."""

    def __init__(self, stops: Callable[[], int], client, request: RunRequest,
                 submission: Submission, paths: SubmissionPaths,
                 needs: Dict[str, Dict[str, float]], events: Events):
        self.stops = stops  # how many times Ctrl-C was pressed so far
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
                if self.stops() > stopped_at:
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
        line = (f"worker {name} {how} while it held {some_names(ours)}; dask runs "
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
            why = (f"the task could not run on {slot}: {last[0]}" if code is not None
                   and code >= 0 else
                   f"the task was stopped on {slot} ({last[0] or f'signal {-(code or 0)}'})")
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
        stops = self.stops()
        for _ in range(stops - stopped_at):
            self.client.run(STOP_SUBMISSION, self.submission.token, on_error="return")
        if not stopped_at:
            waiting = [f for f in self.futures.values()]
            self.client.cancel(waiting)
            self._await_remote()
        return stops

    def _await_remote(self) -> None:
        """Until no worker runs a task of this submission (its executor recorded the end)."""
        handled = self.stops()
        while True:
            answers = self.client.run(RUNNING_TASKS, self.submission.token,
                                      on_error="return")
            if not any(isinstance(a, list) and a for a in answers.values()):
                break
            if self.stops() > handled:
                handled = self.stops()
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


def some_names(names: List[str]) -> str:
    shown = ", ".join(names[:SHOWN_TASKS])
    return shown + (f" and {len(names) - SHOWN_TASKS} more" if len(names) > SHOWN_TASKS else "")
