"""Where func calls run: in-process, worker processes (poolsize), a dask client, or GPU slots.

Every mode returns the rows in the order of the psets given, and every mode that runs func
elsewhere stops within seconds, with an error naming the pset, when a worker dies or func raises
KeyboardInterrupt there (see runner.sweep.workers).
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from runner.sweep.errors import SweepValueError, SweepWorkerError
from runner.sweep.gpuslots import parse_gpu_slots, run_on_slots
from runner.sweep.workers import WorkerSpec, pool_chunksize, run_on_workers


def check_modes(poolsize: int | None, dask_client: Any, gpus: Sequence | None) -> list[str] | None:
    """Validate that at most one of poolsize, dask_client, gpus is given; the parsed GPU slots."""
    given = [
        name
        for name, val in (("poolsize", poolsize), ("dask_client", dask_client), ("gpus", gpus))
        if val is not None
    ]
    if len(given) > 1:
        raise SweepValueError(
            f"use either poolsize, dask_client or gpus, not {' and '.join(given)}"
        )
    if poolsize is not None and (
        isinstance(poolsize, bool) or not isinstance(poolsize, int) or poolsize < 1
    ):
        raise SweepValueError(f"poolsize must be a number of processes >= 1, got {poolsize!r}")
    return None if gpus is None else parse_gpu_slots(gpus)


def map_psets(
    call: Callable[[dict], dict],
    params: Sequence[dict],
    *,
    poolsize: int | None = None,
    dask_client: Any = None,
    slots: Sequence[str] | None = None,
    capture_failures: bool = False,
) -> list[dict]:
    """`[call(pset) for pset in params]`, run where the options say."""
    if slots is not None:
        return run_on_slots(call, params, slots, capture_failures=capture_failures)
    if poolsize is not None:
        specs = [WorkerSpec(f"pool worker {num + 1} of {poolsize}") for num in range(poolsize)]
        chunksize = pool_chunksize(len(params), poolsize)
        return run_on_workers(call, params, specs, mp.get_context(), capture_failures, chunksize)
    if dask_client is not None:
        return map_on_dask(dask_client, call, params)
    return [call(pset) for pset in params]


@dataclass(frozen=True)
class _StopAsError:
    """`call` for a dask worker: a KeyboardInterrupt or SystemExit of func becomes an error of
    its task (dask would lose the worker, then retry the pset on others)."""

    call: Callable[[dict], dict]

    def __call__(self, pset: dict) -> dict:
        try:
            return self.call(pset)
        except Exception:
            raise
        except BaseException as ex:
            raise SweepWorkerError(
                f"func raised {type(ex).__name__} on a dask worker for pset "
                f"_pset_id={pset.get('_pset_id')}; the run stopped. Worker traceback:\n"
                f"{traceback.format_exc()}"
            ) from None


def map_on_dask(client: Any, call: Callable[[dict], dict], params: Sequence[dict]) -> list[dict]:
    """`client.map` the psets; on the first failure cancel the rest and raise.

    A pset whose workers died (dask retries it on others, then gives up with KilledWorker) is a
    SweepWorkerError naming the pset.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    futures = client.map(_StopAsError(call), params, pure=False)
    index = {future.key: idx for idx, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    try:
        for future in as_completed(futures):
            idx = index[future.key]
            try:
                results[idx] = future.result()
            except KilledWorker as ex:
                raise SweepWorkerError(
                    f"the dask workers running pset _pset_id={params[idx].get('_pset_id')} died "
                    f"(a worker process exited or was killed, e.g. by the OOM killer): {ex}"
                ) from None
    except BaseException:
        client.cancel(futures)
        raise
    return results
