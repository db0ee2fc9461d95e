"""GPU slots: `run(..., gpus=[0, 1, "2,3"])` runs each func call in a worker bound to one slot.

One worker process per slot entry (a GPU index, a group "2,3", or a repeated index for several
workers on one GPU). Each worker is a fresh interpreter (multiprocessing "spawn") whose environment
has `CUDA_VISIBLE_DEVICES=<slot>` and `CUDA_DEVICE_ORDER=PCI_BUS_ID` from its first instruction, so
CUDA libraries imported by `func`'s module see only that slot. The parent hands the next pset to
whichever worker is idle and returns the rows in submission order.

As with any spawn-based pool, `func` must be importable (a module-level function) and a driver
script needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
import traceback
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Sequence

from runner.sweep.call import failed_row_fields
from runner.sweep.errors import SweepTypeError, SweepValueError, SweepWorkerError

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"
PCI_BUS_ID = "PCI_BUS_ID"
_STOP_TIMEOUT_S = 10.0
_ENV_LOCK = threading.Lock()


def parse_gpu_slots(gpus: Sequence[Any]) -> list[str]:
    """Validate `gpus` entries (int index or "i,j" group) into CUDA_VISIBLE_DEVICES strings."""
    if isinstance(gpus, (str, int)) or not hasattr(gpus, "__iter__"):
        raise SweepTypeError(f"gpus must be a list of slots such as [0, 1, '2,3'], got {gpus!r}")
    slots = []
    for entry in gpus:
        if isinstance(entry, int) and not isinstance(entry, bool) and entry >= 0:
            slots.append(str(entry))
            continue
        parts = entry.split(",") if isinstance(entry, str) else []
        parts = [part.strip() for part in parts]
        if not parts or not all(part.isdigit() for part in parts):
            raise SweepValueError(
                f"gpus entry {entry!r} is not a GPU index (0) or a group of indices ('2,3'); "
                f"gpus={list(gpus)!r}"
            )
        slots.append(",".join(str(int(part)) for part in parts))
    if not slots:
        raise SweepValueError("gpus is empty; give at least one slot, e.g. gpus=[0]")
    return slots


def slot_environ(slot: str) -> dict[str, str]:
    """The environment variables a worker of `slot` starts with."""
    return {CUDA_VISIBLE_DEVICES: slot, CUDA_DEVICE_ORDER: PCI_BUS_ID}


@contextmanager
def _environ(updates: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (a spawned child inherits them)."""
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


def _worker_main(conn: Connection, call: Callable[[dict], dict]) -> None:
    """Worker loop: get (index, pset), send ("ok", index, row) or ("err", ...); None stops."""
    while True:
        msg = conn.recv()
        if msg is None:
            return
        idx, pset = msg
        try:
            conn.send(("ok", idx, call(pset)))
        except Exception as ex:  # report any failure of func to the parent, which decides
            txt = traceback.format_exc()
            try:
                payload = pickle.dumps(ex)
            except Exception:
                payload = None
            conn.send(("err", idx, payload, txt))


@dataclass
class _Worker:
    slot: str
    proc: Any
    conn: Connection
    task: tuple[int, dict] | None = field(default=None)

    @classmethod
    def start(cls, ctx: Any, slot: str, call: Callable) -> "_Worker":
        parent_conn, child_conn = ctx.Pipe()
        proc = ctx.Process(
            target=_worker_main, args=(child_conn, call), name=f"sweep-gpu-{slot}", daemon=True
        )
        with _environ(slot_environ(slot)):
            proc.start()
        child_conn.close()
        return cls(slot, proc, parent_conn)

    def stop(self, force: bool) -> None:
        if not force and self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(_STOP_TIMEOUT_S)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join()
        self.conn.close()


def _check_picklable(call: Any) -> None:
    try:
        pickle.dumps(call)
    except Exception as ex:
        raise SweepTypeError(
            "gpus=... runs func in spawned worker processes, so func must be picklable: a function "
            f"defined at module level, not a lambda or a nested function ({ex})"
        ) from ex


def _raise_failure(worker: _Worker, pset: dict, payload: bytes | None, txt: str) -> None:
    where = (
        f"func failed on slot CUDA_VISIBLE_DEVICES={worker.slot} "
        f"for pset _pset_id={pset.get('_pset_id')}"
    )
    if payload is not None:
        try:
            ex = pickle.loads(payload)
        except Exception:
            ex = None
        if isinstance(ex, BaseException):
            ex.add_note(f"{where}; worker traceback:\n{txt}")
            raise ex
    raise SweepWorkerError(f"{where}:\n{txt}")


def run_on_slots(
    call: Callable[[dict], dict],
    params: Sequence[dict],
    slots: Sequence[str],
    capture_failures: bool = False,
) -> list[dict]:
    """Run `call` on each pset in one worker per slot; rows in the order of `params`.

    A worker that dies (segfault, kill, out of memory) is an error, or with `capture_failures` a
    failed row for the pset it ran, and the slot gets a fresh worker.
    """
    _check_picklable(call)
    if not params:
        return []
    ctx = mp.get_context("spawn")
    todo = deque(enumerate(params))
    results: list[Any] = [None] * len(params)
    workers: list[_Worker] = []
    failed = True
    try:
        workers = [_Worker.start(ctx, slot, call) for slot in slots[: len(params)]]
        for worker in workers:
            _dispatch(worker, todo)
        while any(worker.task is not None for worker in workers):
            busy = [worker for worker in workers if worker.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for pos, worker in enumerate(workers):
                if worker.task is None:
                    continue
                got = worker.conn in ready or worker.conn.poll()
                if got and _receive(worker, results, capture_failures):
                    _dispatch(worker, todo)
                elif got or worker.proc.sentinel in ready:
                    workers[pos] = _replace_dead(ctx, worker, call, results, capture_failures)
                    _dispatch(workers[pos], todo)
        failed = False
        return results
    finally:
        for worker in workers:
            worker.stop(force=failed)


def _dispatch(worker: _Worker, todo: deque) -> None:
    worker.task = todo.popleft() if todo else None
    if worker.task is not None:
        worker.conn.send(worker.task)


def _receive(worker: _Worker, results: list, capture_failures: bool) -> bool:
    """Store the worker's answer for its task; False if the worker is gone (end of pipe)."""
    idx, pset = worker.task
    try:
        msg = worker.conn.recv()
    except EOFError:
        return False
    if msg[0] == "ok":
        results[idx] = msg[2]
    elif capture_failures:
        results[idx] = {**pset, **failed_row_fields(msg[3])}
    else:
        _raise_failure(worker, pset, msg[2], msg[3])
    return True


def _replace_dead(
    ctx: Any, worker: _Worker, call: Callable, results: list, capture_failures: bool
) -> _Worker:
    idx, pset = worker.task
    worker.proc.join()
    txt = (
        f"worker process for slot CUDA_VISIBLE_DEVICES={worker.slot} died with exit code "
        f"{worker.proc.exitcode} while running pset _pset_id={pset.get('_pset_id')} "
        "(a Python error in the worker prints its traceback on stderr)"
    )
    worker.task = None
    worker.stop(force=True)
    if not capture_failures:
        raise SweepWorkerError(txt)
    results[idx] = {**pset, **failed_row_fields(txt)}
    return _Worker.start(ctx, worker.slot, call)
