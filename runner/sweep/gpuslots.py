"""GPU slots: `run(..., gpus=[0, 1, "2,3"])` runs each func call in a worker bound to one slot.

One worker process per slot entry (a GPU index, a group "2,3", or a repeated index for several
workers on one GPU). Each worker is a fresh interpreter (multiprocessing "spawn") whose environment
has `CUDA_VISIBLE_DEVICES=<slot>` and `CUDA_DEVICE_ORDER=PCI_BUS_ID` from its first instruction, so
CUDA libraries imported by `func`'s module see only that slot. The parent hands the next pset to
whichever worker is idle and returns the rows in submission order; a worker that dies stops the
run at once (runner.sweep.workers).

As with any spawn-based pool, `func` must be importable (a module-level function) and a driver
script needs the `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
from typing import Any, Callable, Sequence

from runner.sweep.errors import SweepTypeError, SweepValueError
from runner.sweep.workers import WorkerSpec, run_on_workers

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"
PCI_BUS_ID = "PCI_BUS_ID"


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


def _check_picklable(call: Any) -> None:
    try:
        pickle.dumps(call)
    except Exception as ex:
        raise SweepTypeError(
            "gpus=... runs func in spawned worker processes, so func must be picklable: a function "
            f"defined at module level, not a lambda or a nested function ({ex})"
        ) from ex


def run_on_slots(
    call: Callable[[dict], dict],
    params: Sequence[dict],
    slots: Sequence[str],
    capture_failures: bool = False,
) -> list[dict]:
    """Run `call` on each pset in one spawned worker per slot; rows in the order of `params`.

    A worker that dies (segfault, kill, out of memory) is an error, or with `capture_failures` a
    failed row for the pset it ran, and the slot gets a fresh worker (see runner.sweep.workers).
    """
    _check_picklable(call)
    specs = [WorkerSpec(f"slot CUDA_VISIBLE_DEVICES={slot}", slot_environ(slot)) for slot in slots]
    return run_on_workers(
        call, params, specs, mp.get_context("spawn"), capture_failures=capture_failures
    )
