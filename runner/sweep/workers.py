"""Worker processes that run func calls: `run(..., poolsize=N)` and `run(..., gpus=[...])`.

One process per worker, each with a pipe to the parent. The parent hands the next pset to
whichever worker is idle and waits on both the pipes and the processes themselves, so a worker
that dies (`os._exit`, a segfault, the OOM killer's SIGKILL) is noticed at once: the run stops
with a SweepWorkerError naming the pset it was running (with `capture_failures`, that pset
becomes a failed row and the worker is replaced). An exception raised by func is sent back and
raised again in the parent with its own type, as multiprocessing.Pool does; a KeyboardInterrupt
or SystemExit raised by func stops the run with a SweepWorkerError. When the run stops early, the
other workers are terminated at once. Rows come back in the order of the psets given.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Mapping, Sequence

from runner.sweep.call import failed_row_fields
from runner.sweep.errors import SweepTypeError, SweepWorkerError

FLUSH_S = 0.05  # a worker sends finished rows at least this often (and at a chunk's end)
_STOP_TIMEOUT_S = 10.0
_KILL_AFTER_S = 2.0
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class WorkerSpec:
    """One worker to start: a label for messages and the environment it starts with."""

    label: str
    environ: Mapping[str, str] = field(default_factory=dict)


@contextmanager
def _environ(updates: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (a started child inherits them)."""
    if not updates:
        yield
        return
    with _ENV_LOCK:
        old = {key: os.environ.get(key) for key in updates}
        os.environ.update(updates)
        try:
            yield
        finally:
            for key, val in old.items():
                if val is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = val


def _worker_main(conn: Connection, running: Any, call: Callable[[dict], dict]) -> None:
    """Worker loop: get a chunk [(index, pset), ...] (None stops), call func on each, and send
    the answers [("ok", index, row), ...] in batches: at the end of the chunk and whenever
    FLUSH_S passed since the last batch. A failure ("err", index, ...) ends the batch and the
    chunk: the parent stops the run or hands the rest out again. `running` holds the index of
    the pset being run, for the parent to name the one a dying worker was on."""
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, KeyboardInterrupt):  # the parent is gone, or Ctrl-C reached us too
            return
        if chunk is None:
            return
        batch: list[tuple] = []
        last_sent = time.monotonic()
        for idx, pset in chunk:
            running.value = idx
            try:
                batch.append(("ok", idx, call(pset)))
            except BaseException as ex:  # func failed: the parent decides; KeyboardInterrupt too
                batch.append(_error(idx, ex, traceback.format_exc()))
                break
            if time.monotonic() - last_sent >= FLUSH_S:
                if not _send(conn, batch):
                    batch = []
                    break
                batch, last_sent = [], time.monotonic()
        if batch:
            _send(conn, batch)


def _error(idx: int, ex: BaseException, txt: str) -> tuple:
    try:
        payload = pickle.dumps(ex)
    except Exception:
        payload = None
    return ("err", idx, payload, txt, isinstance(ex, Exception))


def _send(conn: Connection, batch: list[tuple]) -> bool:
    """Send `batch`; False if a row could not be pickled, which was sent as a failure instead,
    with the rows after it left out (the worker skips the rest of its chunk)."""
    try:
        conn.send(batch)
        return True
    except Exception:  # pickling failed before anything was written
        pass
    for pos, msg in enumerate(batch):
        try:
            pickle.dumps(msg)
        except Exception as ex:
            txt = (
                f"the row of pset index {msg[1]} cannot be sent back from the worker process: "
                f"what func returns must be picklable ({type(ex).__name__}: {ex})"
            )
            conn.send([*batch[:pos], _error(msg[1], SweepTypeError(txt), txt)])
            return False
    conn.send(batch)  # pickled one by one, but not together: try once more
    return True


@dataclass
class _Worker:
    spec: WorkerSpec
    proc: Any
    conn: Connection
    running: Any  # shared: index of the pset the worker is on
    pending: deque = field(default_factory=deque)  # (index, pset) sent, answer not back yet

    @classmethod
    def start(cls, ctx: Any, spec: WorkerSpec, call: Callable) -> _Worker:
        parent_conn, child_conn = ctx.Pipe()
        running = ctx.RawValue("q", -1)
        proc = ctx.Process(
            target=_worker_main,
            args=(child_conn, running, call),
            name=f"sweep {spec.label}",
            daemon=True,
        )
        with _environ(spec.environ):
            proc.start()
        child_conn.close()
        return cls(spec, proc, parent_conn, running)

    def dispatch(self, todo: deque, chunksize: int) -> None:
        """Send the next chunk of `todo` (none left: nothing)."""
        chunk = [todo.popleft() for _ in range(min(chunksize, len(todo)))]
        if chunk:
            self.pending.extend(chunk)
            self.conn.send(chunk)

    def stop(self, force: bool) -> None:
        if not force and self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(_STOP_TIMEOUT_S)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(_KILL_AFTER_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _where(worker: _Worker, pset: dict) -> str:
    return f"{worker.spec.label}, pset _pset_id={pset.get('_pset_id')}"


def _raise_failure(worker: _Worker, pset: dict, payload: bytes | None, txt: str) -> None:
    """Raise func's exception again here, with a note saying where it happened."""
    where = f"func failed in {_where(worker, pset)}"
    if payload is not None:
        try:
            ex = pickle.loads(payload)
        except Exception:
            ex = None
        if isinstance(ex, Exception):
            ex.add_note(f"{where}; worker traceback:\n{txt}")
            raise ex
    raise SweepWorkerError(f"{where}:\n{txt}")


def pool_chunksize(num_psets: int, num_workers: int) -> int:
    """Psets per message to a worker, as multiprocessing.Pool.map chooses them."""
    return max(1, -(-num_psets // (4 * max(num_workers, 1))))


def run_on_workers(
    call: Callable[[dict], dict],
    params: Sequence[dict],
    specs: Sequence[WorkerSpec],
    ctx: Any,
    capture_failures: bool = False,
    chunksize: int = 1,
) -> list[dict]:
    """Run `call` on each pset in one worker per spec (at most one per pset), started by the
    multiprocessing context `ctx`, handing out `chunksize` psets at a time; the rows in the
    order of `params`."""
    if not params:
        return []
    todo = deque(enumerate(params))
    results: list[Any] = [None] * len(params)
    workers: list[_Worker] = []
    failed = True
    try:
        for spec in specs[: len(params)]:
            workers.append(_Worker.start(ctx, spec, call))
        for worker in workers:
            worker.dispatch(todo, chunksize)
        while any(worker.pending for worker in workers):
            busy = [worker for worker in workers if worker.pending]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for pos, worker in enumerate(workers):
                if not worker.pending:
                    continue
                if not _receive_ready(worker, ready, results, capture_failures, todo):
                    worker = workers[pos] = _replace_dead(
                        ctx, worker, call, results, capture_failures, todo
                    )
                if not worker.pending:
                    worker.dispatch(todo, chunksize)
        failed = False
        return results
    finally:
        for worker in workers:
            worker.stop(force=failed)


def _receive_ready(
    worker: _Worker, ready: set, results: list, capture_failures: bool, todo: deque
) -> bool:
    """Take every batch of answers the worker has sent; False if it died before finishing."""
    while worker.pending and (worker.conn in ready or worker.conn.poll()):
        ready.discard(worker.conn)
        try:
            batch = worker.conn.recv()
        except (EOFError, ConnectionResetError):
            return False
        for msg in batch:
            _store(worker, msg, results, capture_failures, todo)
    return not worker.pending or worker.proc.sentinel not in ready


def _store(
    worker: _Worker, msg: tuple, results: list, capture_failures: bool, todo: deque
) -> None:
    """Store one answer: the row, or what func's failure makes of it (the worker skipped the
    rest of its chunk: back in line with them)."""
    idx, pset = worker.pending.popleft()
    assert idx == msg[1], "answers come back in the order the psets were sent"
    if msg[0] == "ok":
        results[idx] = msg[2]
        return
    payload, txt, is_exception = msg[2:]
    if not is_exception:
        kind = txt.rstrip().splitlines()[-1] if txt.strip() else "BaseException"
        raise SweepWorkerError(
            f"func raised {kind} in {_where(worker, pset)}; the run stopped and its other "
            f"workers were stopped. Worker traceback:\n{txt}"
        )
    if not capture_failures:
        _raise_failure(worker, pset, payload, txt)
    results[idx] = {**pset, **failed_row_fields(txt)}
    todo.extendleft(reversed(worker.pending))
    worker.pending.clear()


def _replace_dead(
    ctx: Any,
    worker: _Worker,
    call: Callable,
    results: list,
    capture_failures: bool,
    todo: deque,
) -> _Worker:
    """A worker died: an error naming the pset it was on, or with `capture_failures` a failed row
    for that pset, its other unanswered psets back in line (those that had finished since its
    last batch run again), and a fresh worker."""
    worker.proc.join()
    dead = worker.running.value
    idx, pset = next(
        ((i, p) for i, p in worker.pending if i == dead), worker.pending[0]
    )
    worker.pending.remove((idx, pset))
    txt = (
        f"the worker process of {_where(worker, pset)} died with exit code "
        f"{worker.proc.exitcode} (a negative code is the signal that killed it: -9 is SIGKILL, "
        "as the OOM killer sends)"
    )
    todo.extendleft(reversed(worker.pending))
    worker.pending.clear()
    worker.stop(force=True)
    if not capture_failures:
        raise SweepWorkerError(f"{txt}; the run stopped and its other workers were stopped")
    results[idx] = {**pset, **failed_row_fields(txt)}
    return _Worker.start(ctx, worker.spec, call)
