"""`run worker`: one dask worker process per slot of this machine, each watched by a dask nanny
(which starts it again if it dies), until Ctrl-C.

Each worker process gets its slot's `CUDA_VISIBLE_DEVICES` (and `CUDA_DEVICE_ORDER=PCI_BUS_ID`)
in its environment before it runs anything, a name after its host and GPUs, and its slot as
resources (see `needs`). Names are chosen under a lock of this host among the names the
scheduler knows, so several `run worker` on one host never pick the same.

Stopping: the workers are closed (dask hands the tasks they held to other workers), their exec
servers then stop the commands they ran (recorded `interrupted`), and this process, a child
subreaper (Linux), waits for every process it started, directly or not, before it returns:
nothing it started outlives it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
import time
from typing import Any, List, Optional, Sequence

from runner.backends.dask.needs import WorkerSpec, make_worker_specs
from runner.errors import BackendError
from runner.execution.executor import Events
from runner.identity import HOST
from runner.store.files import FileLock
from runner.task import Slot

PRELOAD = "runner.backends.dask.remote"  # its dask_setup runs in every worker as it starts
CLOSE_TIMEOUT = 2.0  # seconds a worker gets to close before its process is terminated
NAME_ATTEMPTS = 3
LOCK_WAIT = 60.0
_PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> bool:
    """Become the parent of every orphaned descendant (Linux), so none is lost from sight."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def names_lock() -> FileLock:
    """The lock of this host's `run worker`s while they choose names (one per user)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return FileLock(os.path.join(tempfile.gettempdir(), f"runner-{uid}-worker-names.lock"),
                    directory=False)


class WorkerSet:
    """The workers of one `run worker` (see the module's docstring)."""

    def __init__(self, scheduler: str, slots: Sequence[Slot], gpu_memory: Optional[int],
                 events: Events, grace: float):
        self.scheduler = scheduler
        self.slots = list(slots)
        self.gpu_memory = gpu_memory
        self.events = events
        self.grace = grace
        self.nannies: List[Any] = []
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.stopping: Optional[asyncio.Event] = None
        self.stops = 0

    def stop(self, kill: bool = False) -> None:
        """Ctrl-C (from the signal handler): close the workers; again: kill them."""
        self.stops += 2 if kill else 1
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
            if self.stops > 1:
                self.loop.call_soon_threadsafe(self._kill)

    def serve(self) -> Optional[str]:
        """Start the workers, keep them until `stop`; None, or why they ended on their own."""
        set_child_subreaper()
        try:
            return asyncio.run(self._serve())
        finally:
            self._reap(time.monotonic() + self.grace + CLOSE_TIMEOUT + 5)

    async def _serve(self) -> Optional[str]:
        import dask

        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        if self.stops:
            return None
        # the workers start processes of their own (their guardians): not daemonic
        dask.config.set({"distributed.worker.daemon": False})
        try:
            specs = await self._start()
        except BaseException:
            await self._close()
            raise
        if specs is None:
            await self._close()
            return None
        for spec, nanny in zip(specs, self.nannies):
            self.events.message(f"worker {spec.describe()} at {nanny.worker_address} "
                                f"(pid {nanny.process.pid})")
        self.events.message(f"{len(specs)} worker{'s' if len(specs) != 1 else ''} of "
                            f"{self.scheduler}; Ctrl-C stops them (dask hands their running "
                            f"tasks to other workers)")
        ended = await self._watch()
        await self._close()
        return ended

    async def _start(self) -> Optional[List[WorkerSpec]]:
        """Start a worker per slot under the host's names lock; None if stopped meanwhile."""
        from distributed import Nanny

        lock = names_lock()
        deadline = time.monotonic() + LOCK_WAIT
        while not lock.try_acquire(timeout=0.2):
            if self.stopping.is_set():
                return None
            if time.monotonic() > deadline:
                raise BackendError(f"another run worker of this host holds {lock.path} for "
                                   f"more than {LOCK_WAIT:g} s; is one stuck starting?")
            await asyncio.sleep(0.2)
        try:
            slots, started_specs = list(self.slots), []
            for _ in range(NAME_ATTEMPTS):
                taken = await self._names_in_use()
                specs = make_worker_specs(slots, HOST, taken, self.gpu_memory)
                nannies = [Nanny(self.scheduler, nthreads=s.nthreads, name=s.name,
                                 resources=s.resources, env=s.env, memory_limit=0,
                                 preload=[PRELOAD]) for s in specs]
                outcomes = await asyncio.gather(*(n.start() for n in nannies),
                                                return_exceptions=True)
                retry = []
                for spec, nanny, outcome in zip(specs, nannies, outcomes):
                    if not isinstance(outcome, BaseException):
                        self.nannies.append(nanny)
                        started_specs.append(spec)
                    elif "name taken" in _chain(outcome):
                        retry.append(spec.slot)
                    else:
                        raise BackendError(f"worker {spec.name} did not start: "
                                           f"{_chain(outcome).splitlines()[0]}")
                if not retry or self.stopping.is_set():
                    break
                slots = retry
            else:
                raise BackendError(f"could not find free worker names on {self.scheduler} after "
                                   f"{NAME_ATTEMPTS} attempts")
        finally:
            lock.release()
        return started_specs

    async def _names_in_use(self) -> List[str]:
        from distributed.core import rpc

        from runner.backends.dask.client import connect_timeout

        timeout = connect_timeout()
        scheduler = rpc(self.scheduler, timeout=timeout)
        try:
            identity = await asyncio.wait_for(scheduler.identity(), timeout)
        except (OSError, asyncio.TimeoutError, ValueError, TypeError) as e:
            raise BackendError(f"cannot reach the dask scheduler at {self.scheduler} ("
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                               f"start one with `dask scheduler` and pass its address") from None
        finally:
            await scheduler.close_rpc()
        return [str(w.get("name")) for w in identity.get("workers", {}).values()]

    async def _watch(self) -> Optional[str]:
        from distributed.core import Status

        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            if all(n.status in (Status.closed, Status.closing, Status.failed)
                   for n in self.nannies):
                return (f"the workers closed: the scheduler at {self.scheduler} went away or "
                        f"asked them to")
        return None

    async def _close(self) -> None:
        await asyncio.gather(*(n.close(timeout=CLOSE_TIMEOUT) for n in self.nannies),
                             return_exceptions=True)

    def _kill(self) -> None:
        """A second Ctrl-C: kill the worker processes now (their guardians stop the tasks)."""
        for nanny in self.nannies:
            process = getattr(nanny, "process", None)
            pid = getattr(process, "pid", None)
            if pid and os.getpid() == _parent_of(pid):  # our child, not yet reaped
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _reap(self, deadline: float) -> None:
        """Wait for every descendant (our children, and orphans handed to us as subreaper);
        past the deadline, or after a second Ctrl-C, kill what is left. multiprocessing's
        resource tracker stays: it ends with this process."""
        tracker = _resource_tracker()
        while True:
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                return
            left = [pid for pid in _children() if pid != tracker]
            if not left:
                return
            if self.stops > 1 or time.monotonic() > deadline:
                for child in left:
                    _kill_child(child)
            time.sleep(0.05)


def _resource_tracker() -> Optional[int]:
    """The pid of multiprocessing's resource tracker of this process, if it started one."""
    try:
        from multiprocessing import resource_tracker
    except ImportError:
        return None
    return getattr(getattr(resource_tracker, "_resource_tracker", None), "_pid", None)


def _chain(error: BaseException) -> str:
    """Every message of an exception and its causes."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


def _parent_of(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _children() -> List[int]:
    """Our children that have not been reaped: their pids cannot have been reused."""
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit() and _parent_of(int(entry)) == me:
            found.append(int(entry))
    return found


def _kill_child(pid: int) -> None:
    """SIGKILL a child of ours, and the process group it leads."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
