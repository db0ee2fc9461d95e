"""Where func calls run: in-process, a multiprocessing pool, a dask client, or GPU slot workers.

Every mode returns the rows in the order of the psets given.
"""

from __future__ import annotations

import multiprocessing as mp
from typing import Any, Callable, Sequence

from runner.sweep.errors import SweepValueError
from runner.sweep.gpuslots import parse_gpu_slots, run_on_slots


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
        with mp.Pool(poolsize) as pool:
            return pool.map(call, params)
    if dask_client is not None:
        return list(dask_client.gather(dask_client.map(call, params)))
    return [call(pset) for pset in params]
