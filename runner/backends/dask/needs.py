"""What a task asks of a dask worker, and what each worker of `run worker` offers.

dask's resources are counters: a task that asks for `{"GPU": 1}` runs only on a worker that
advertises at least 1 `GPU`, and takes that much while it runs; they never bind a GPU (each
worker is pinned to its slot's GPUs when it starts, see `make_worker_specs`). Every worker that
`run worker` starts advertises

* `SLOT`: `SLOT_SHARES` (its slot, in shares; the mark of a runner's worker),
* `GPU`: the number of GPUs of its slot (none for a slot without GPU),
* `GPU_MEMORY`: with `--gpu-memory`, the memory per GPU it hands out (bytes).

A task without `gpu_memory` takes the whole slot (`SLOT: SLOT_SHARES`), as a task takes a local
slot, and `gpus_per_task: K` asks for `GPU: K`. A task with `gpu_memory: M` asks for one share and
`GPU_MEMORY: M`, so tasks share a GPU up to its memory, as locally. The requests are passed to
`client.submit(..., resources=...)` for each task (dask.annotate's are lost in graph
optimisation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Dict, List, Mapping, Optional, Sequence

from runner.errors import ResourceError
from runner.gpu.binding import CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES, PCI_BUS_ID
from runner.gpu.query import format_bytes
from runner.task import Slot, Task

SLOT = "SLOT"
GPU = "GPU"
GPU_MEMORY = "GPU_MEMORY"
SLOT_SHARES = 16  # tasks that may share one slot by memory (a worker's threads with --gpu-memory)
SLOT_VARIABLE = "RUNNER_WORKER_SLOT"  # the slot's index, in its worker's environment
SHOWN_WORKERS = 6


@dataclass(frozen=True)
class WorkerSpec:
    """One dask worker of `run worker`: its slot, name, resources, threads and environment."""

    slot: Slot
    name: str
    resources: Dict[str, float]
    nthreads: int
    env: Dict[str, str]

    def describe(self) -> str:
        return f"{self.name} ({describe_resources(self.resources)})"


def base_name(host: str, slot: Slot, cpu_index: int) -> str:
    """`<host>/gpu-0`, `<host>/gpu-2,3`; a slot without GPU `<host>/cpu-<k>`."""
    return f"{host}/gpu-{slot.cuda_visible_devices}" if slot.gpus else f"{host}/cpu-{cpu_index}"


def make_worker_specs(slots: Sequence[Slot], host: str, taken: Collection[str],
                      gpu_memory: Optional[int] = None) -> List[WorkerSpec]:
    """One worker per slot, named after the host and its GPUs, unique among `taken` (the names
    the scheduler knows: other `run worker`s of this host): a GPU slot whose name is taken gets
    `#2`, `#3`, ...; slots without GPU take the next free `cpu-<k>`."""
    used = set(taken)
    specs = []
    cpu = 0
    for slot in slots:
        if slot.gpus:
            name = base_name(host, slot, 0)
            count = 1
            while name in used:
                count += 1
                name = f"{base_name(host, slot, 0)}#{count}"
        else:
            while base_name(host, slot, cpu) in used:
                cpu += 1
            name = base_name(host, slot, cpu)
        used.add(name)
        resources: Dict[str, float] = {SLOT: SLOT_SHARES}
        if slot.gpus:
            resources[GPU] = len(slot.gpus)
            if gpu_memory is not None:
                resources[GPU_MEMORY] = gpu_memory
        shared = GPU_MEMORY in resources
        env = {CUDA_VISIBLE_DEVICES: slot.cuda_visible_devices, CUDA_DEVICE_ORDER: PCI_BUS_ID,
               SLOT_VARIABLE: str(slot.index)}
        specs.append(WorkerSpec(slot, name, resources, SLOT_SHARES if shared else 1, env))
    return specs


def task_resources(task: Task) -> Dict[str, float]:
    """The dask resources one task asks for (see the module's docstring)."""
    gpus = task.settings.get("gpus_per_task")
    memory = task.settings.get("gpu_memory")
    if memory is not None:
        if gpus is not None and gpus > 1:
            raise ResourceError(f"task {task.name}: gpus_per_task {gpus} with gpu_memory on the "
                                f"dask engine: a task that shares GPUs by memory takes one GPU "
                                f"there; drop gpu_memory (the task then takes whole GPUs) or "
                                f"set gpus_per_task: 1")
        return {SLOT: 1, GPU_MEMORY: memory}
    resources: Dict[str, float] = {SLOT: SLOT_SHARES}
    if gpus:
        resources[GPU] = gpus
    return resources


def describe_resources(resources: Mapping[str, Any], asked: bool = False) -> str:
    """'1 GPU, 20.0 GiB per GPU', 'no GPU', or what a worker not of `run worker` has."""
    if SLOT not in resources and not asked:
        return "not a worker of run worker: no SLOT resource"
    parts = []
    gpus = resources.get(GPU)
    if gpus:
        parts.append(f"{gpus:g} GPU" + ("s" if gpus != 1 else ""))
    elif not asked:
        parts.append("no GPU")
    if resources.get(GPU_MEMORY) is not None:
        parts.append(f"{format_bytes(resources[GPU_MEMORY])} of GPU memory"
                     + (" per GPU" if not asked else ""))
    return ", ".join(parts) or "a slot"


def fits(asked: Mapping[str, float], offered: Mapping[str, Any]) -> bool:
    return all((offered.get(name) or 0) >= amount for name, amount in asked.items())


def check_fits(tasks: Sequence[Task], workers: Mapping[str, Mapping[str, Any]],
               scheduler: str) -> Dict[str, Dict[str, float]]:
    """task name -> its resources; ResourceError for the first task no worker can run, naming
    the task and what the workers offer (`workers`: worker name -> its resources)."""
    requests: Dict[str, Dict[str, float]] = {}
    judged: Dict[tuple, bool] = {}
    for task in tasks:
        asked = requests[task.name] = task_resources(task)
        key = tuple(sorted(asked.items()))
        if key not in judged:
            judged[key] = any(fits(asked, offered) for offered in workers.values())
        if not judged[key]:
            offers = [f"{name} ({describe_resources(r)})"
                      for name, r in sorted(workers.items())[:SHOWN_WORKERS]]
            more = len(workers) - SHOWN_WORKERS
            raise ResourceError(
                f"task {task.name} needs {describe_resources(asked, asked=True)}, which no worker "
                f"of {scheduler} offers; the workers are {', '.join(offers)}"
                + (f" and {more} more" if more > 0 else "")
                + f"; start a worker that offers it ({_hint(asked)}) or change the task's "
                  f"settings (nothing was submitted)")
    return requests


def _hint(asked: Mapping[str, float]) -> str:
    if GPU_MEMORY in asked:
        return "run worker --gpu-memory SIZE"
    if asked.get(GPU, 0) > 1:
        return f"run worker -r with a slot of {asked[GPU]:g} GPUs, such as 0,1"
    if GPU in asked:
        return "run worker -r auto on a machine with GPUs"
    return "run worker --scheduler ADDRESS"
