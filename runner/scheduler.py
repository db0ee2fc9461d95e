"""One worker thread per slot, all fed in order from one queue.

A worker takes the next job the moment it is free: no batches, no polling. The scheduler knows
nothing about what a job is; `execute(job, slot, final)` runs it and returns its result, or
None to put it back until the queue is empty (a job another invocation holds), when it is
offered again with `final=True` and must then be run or answered for.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable, Deque, Generic, Iterable, List, Optional, Sequence, TypeVar

from runner.process import ProcessGroups
from runner.task import Slot

J = TypeVar("J")
R = TypeVar("R")

Execute = Callable[[J, Slot, bool], Optional[R]]


class Scheduler(Generic[J, R]):
    """Runs jobs on slots until the queue is empty or `groups` is stopped."""

    def __init__(self, slots: Sequence[Slot], execute: Execute,
                 groups: Optional[ProcessGroups] = None,
                 on_result: Optional[Callable[[R], None]] = None):
        if not slots:
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

    @property
    def left(self) -> int:
        """Jobs not yet taken by a worker."""
        return len(self._queue) + len(self._deferred)

    def run(self, jobs: Iterable[J], tick: Optional[float] = None,
            on_tick: Optional[Callable[[], None]] = None) -> List[R]:
        """Run every job; call `on_tick` every `tick` seconds meanwhile; return the results."""
        self._queue.extend(jobs)
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
