"""One worker thread per slot, all fed in order from one queue.

A worker takes the next job the moment it is free: no batches, no polling. The scheduler knows
nothing about what a job is; `execute(job, slot, final)` runs it and returns its result, or
None to put it back until the queue is empty (a job another invocation holds), when it is
offered again with `final=True` and must then be run or answered for.

With an `admission` (GPU pools, `runner/admission.py`) there are no fixed slots: one dispatcher
thread asks the admission where the next job may start, reserves that, and hands the job to a
worker of its own; while the job has to wait, `on_wait` hears why, and the dispatcher asks again
when a job ends or after `admission.retry_after()` seconds.
"""

from __future__ import annotations

import collections
import heapq
import queue
import threading
import time
from typing import (Any, Callable, Deque, Dict, Generic, Iterable, List, Optional, Sequence,
                    TypeVar)

from runner.execution.process import ProcessGroups
from runner.task import Slot

J = TypeVar("J")
R = TypeVar("R")

Execute = Callable[[J, Slot, bool], Optional[R]]


class Scheduler(Generic[J, R]):
    """Runs jobs on slots until the queue is empty or `groups` is stopped."""

    def __init__(self, slots: Sequence[Slot], execute: Execute,
                 groups: Optional[ProcessGroups] = None,
                 on_result: Optional[Callable[[R], None]] = None,
                 admission: Any = None,
                 on_wait: Optional[Callable[[Optional[str]], None]] = None):
        if not slots and admission is None:
            raise ValueError("a scheduler needs at least one slot")
        self.slots = list(slots)
        self.execute = execute
        self.groups = groups or ProcessGroups()
        self.stopping = self.groups.stopping
        self.on_result = on_result
        self.results: List[R] = []
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._queue: Deque[J] = collections.deque()
        self._deferred: Deque[J] = collections.deque()
        self._finished = threading.Event()
        self._active = 0
        self.admission = admission
        self.on_wait = on_wait
        self._changed = threading.Condition(self._lock)
        self._taking = threading.Lock()  # one admission decision at a time
        self._ended = 0  # times the last running job ended: the dispatcher's cue to look again
        self._running = 0  # admitted jobs not yet ended
        self._idle: List[int] = []  # slot indices of workers waiting for a job
        self._inboxes: Dict[int, "queue.SimpleQueue"] = {}
        self._workers: List[threading.Thread] = []
        self._waiting: Optional[str] = None

    @property
    def left(self) -> int:
        """Jobs not yet taken by a worker."""
        return len(self._queue) + len(self._deferred)

    def run(self, jobs: Iterable[J], tick: Optional[float] = None,
            on_tick: Optional[Callable[[], None]] = None) -> List[R]:
        """Run every job; call `on_tick` every `tick` seconds meanwhile; return the results."""
        self._queue.extend(jobs)
        if self.admission is not None:
            self._active = 1
            threads = [threading.Thread(target=self._dispatch, daemon=True, name="admission")]
        else:
            self._active = len(self.slots)
            threads = [threading.Thread(target=self._work, args=(slot,), daemon=True,
                                        name=f"slot-{slot.index}") for slot in self.slots]
        for thread in threads:
            thread.start()
        while not self._finished.wait(tick):
            if on_tick is not None:
                on_tick()
        for thread in threads:
            thread.join()
        if self.error is not None:
            raise self.error
        return self.results

    def _next(self) -> Optional[tuple]:
        with self._lock:
            if self.stopping.is_set():
                return None
            if self._queue:
                return self._queue.popleft(), False
            if self._deferred:
                return self._deferred.popleft(), True
            return None

    def _work(self, slot: Slot) -> None:
        try:
            while True:
                item = self._next()
                if item is None:
                    break
                job, final = item
                result = self.execute(job, slot, final)
                if result is None:
                    with self._lock:
                        self._deferred.append(job)
                    continue
                with self._lock:
                    self.results.append(result)
                if self.on_result is not None:
                    self.on_result(result)
        except BaseException as e:  # a bug or a full disk: stop everything, re-raise in run()
            with self._lock:
                if self.error is None:
                    self.error = e
            self.groups.stop()
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self._finished.set()

    # -- with an admission: a worker per running job; a dispatcher for waits and new workers --

    def _dispatch(self) -> None:
        """Fill the GPUs at the start; then, while the next job waits, look again every
        `admission.retry_after()` seconds (foreign processes come and go). Jobs ending on a
        worker are followed by that worker itself (`_serve`)."""
        if hasattr(self.groups, "tags"):
            self.admission.attach(self.groups.tags)
        try:
            while not self.stopping.is_set():
                item, why = self._take()
                if item is not None:
                    self._start(item)
                    continue
                with self._changed:
                    if why is None and self._running == 0 and not (self._queue or self._deferred):
                        break
                    seen = self._ended
                self._wait_for_change(seen, self.admission.retry_after() if why else 1.0)
        except BaseException as e:  # an NVML failure or a bug: stop everything, re-raise in run()
            self._fail(e)
        finally:
            with self._changed:
                while self._running:
                    self._changed.wait()
            self._say_waiting(None)
            for inbox in list(self._inboxes.values()):
                inbox.put(None)
            for worker in list(self._workers):
                worker.join()
            with self._lock:
                self._active = 0
                self._finished.set()

    def _start(self, item: tuple) -> None:
        """Hand an admitted job to an idle worker, or to a new one."""
        with self._changed:
            index = heapq.heappop(self._idle) if self._idle else len(self._inboxes)
            inbox = self._inboxes.get(index)
            if inbox is None:
                inbox = self._inboxes[index] = queue.SimpleQueue()
                worker = threading.Thread(target=self._serve, args=(index, inbox), daemon=True,
                                          name=f"slot-{index}")
                self._workers.append(worker)
                worker.start()
        inbox.put(item)

    def _take(self) -> tuple:
        """((job, final, placement), None) for the next job if it is admitted now; else
        (None, why it waits), or (None, None) when there is no job to take (or we stop)."""
        with self._taking:
            with self._lock:
                if self.stopping.is_set():
                    return None, None
                if self._queue:
                    job, final, source = self._queue[0], False, self._queue
                elif self._deferred:
                    job, final, source = self._deferred[0], True, self._deferred
                else:
                    return None, None
            placement, why = self.admission.admit(job)
            if placement is None:
                self._say_waiting(why)
                return None, why
            with self._lock:
                source.popleft()
                self._running += 1
            self._say_waiting(None)
            return (job, final, placement), None

    def _serve(self, index: int, inbox: "queue.SimpleQueue") -> None:
        """A worker: runs the job it is handed, then admits the next job itself, and when the
        job that ended was larger than that one, hands what else fits to other workers."""
        while True:
            item = inbox.get()
            if item is None:
                return
            try:
                while item is not None:
                    ended = item[2]
                    self._run_admitted(index, *item)
                    item, _ = self._take()
                    if item is not None and _larger(ended.demand, item[2].demand):
                        more, _ = self._take()  # a larger job ended: room for more than one?
                        while more is not None:
                            self._start(more)
                            more, _ = self._take()
            except BaseException as e:  # the admission failed: stop, re-raise in run()
                self._fail(e)
            with self._changed:
                heapq.heappush(self._idle, index)

    def _run_admitted(self, index: int, job: J, final: bool, placement: Any) -> None:
        slot = Slot(index, placement.ids)
        placement.slot = slot
        result = None
        try:
            result = self.execute(job, slot, final)
        except BaseException as e:
            self._fail(e)
        finally:
            self.admission.release(placement)
        try:
            if result is None:
                if self.error is None:
                    with self._lock:
                        self._deferred.append(job)
            else:
                with self._lock:
                    self.results.append(result)
                if self.on_result is not None:
                    self.on_result(result)
        except BaseException as e:
            self._fail(e)
        finally:
            with self._changed:
                self._running -= 1
                if not self._running:  # the dispatcher's cue to look again, or to finish
                    self._ended += 1
                    self._changed.notify_all()

    def _wait_for_change(self, seen: int, timeout: float) -> None:
        """Until a job ends, `timeout` passes or the run is stopped (checked every 0.1 s)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._ended == seen and not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(min(remaining, 0.1))

    def _say_waiting(self, why: Optional[str]) -> None:
        if why != self._waiting:
            self._waiting = why
            if self.on_wait is not None:
                self.on_wait(why)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self.groups.stop()


def _larger(ended: Any, started: Any) -> bool:
    """Whether a job's demand that ended may leave room for more than the one that replaced it."""
    if ended.gpus != started.gpus:
        return ended.gpus > started.gpus
    if (ended.memory is None) != (started.memory is None):
        return ended.memory is None  # a GPU to itself ended
    return (ended.memory or 0) > (started.memory or 0)
