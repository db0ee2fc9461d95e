"""Talking to dask: the scheduler's address, a client of it, what its workers offer, the
functions sent to the workers, the tasks as futures, and where a submission's keys stand.

distributed is imported only here and only when called (`run --help` does not import it).
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runner.backends.dask.records import Submission, SubmissionPaths
from runner.errors import BackendError, MissingDependencyError, UsageError
from runner.task import Task

SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before giving up
STATUS_TIMEOUT = 3.0  # the same for `run status` (it falls back to the files)


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
