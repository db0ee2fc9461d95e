"""Where an invocation's tasks run: fixed slots, or a GPU pool behind an `Admission`.

* `resource: [0, "1,2", 0]` and no GPU settings: one worker per entry, as always (NVML is asked
  only to describe the GPUs in `stat.json`, and only if it is there).
* `resource: auto`: the GPUs NVML reports, within the runner's own `CUDA_VISIBLE_DEVICES`. With no
  NVML or no GPU that is said once and the tasks run on one slot per CPU core without a GPU.
* `gpus_per_task: K` alone: fixed slots of K GPUs each, from the pool.
* `gpu_memory`, `max_gpu_util`, different `gpus_per_task` per task, or a GPU listed twice next to
  `gpus_per_task`: no fixed slots; an `Admission` decides where each task starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from runner.gpu.admission import Admission, PoolGpu
from runner.spec.config import AUTO_RESOURCE
from runner.errors import ResourceError
from runner.gpu import open_gpus
from runner.gpu.query import GpuDevice, GpuQuery, GpuUnavailable, format_bytes
from runner.gpu.binding import CUDA_VISIBLE_DEVICES
from runner.task import Slot, Task

GPU_SETTINGS = ("gpus_per_task", "gpu_memory", "max_gpu_util")
Resource = Union[None, str, Sequence[Tuple[str, ...]]]


def describe_slots(slots: Sequence[Slot]) -> str:
    """`slots: 2 (0: GPU 0, 1: GPU 1)` for a header."""
    return f"slots: {len(slots)} (" + ", ".join(
        f"{s.index}: GPU {s.cuda_visible_devices}" if s.gpus else f"{s.index}: no GPU"
        for s in slots) + ")"


@dataclass
class Resources:
    """The slots (or the admission) of an invocation, the GPUs behind them and what to tell."""

    slots: List[Slot]
    admission: Optional[Admission] = None
    devices: Dict[str, GpuDevice] = field(default_factory=dict)  # GPU id as bound -> device
    notices: List[str] = field(default_factory=list)
    query: Optional[GpuQuery] = None

    def device_records(self) -> Dict[str, Dict[str, Any]]:
        """GPU id -> what `stat.json` records about it."""
        return {gpu_id: device.to_json() for gpu_id, device in self.devices.items()}

    def describe(self) -> str:
        """The header line: the slots, or the GPU pool and how tasks are admitted to it."""
        if self.admission is None:
            return describe_slots(self.slots)
        gpus = []
        for gpu in self.admission.pool:
            device = self.devices.get(gpu.id)
            cap = f", at most {gpu.cap} tasks" if gpu.cap is not None else ""
            detail = f"{device.name}, {format_bytes(device.memory_total)}" if device else ""
            gpus.append(f"{gpu.id}" + (f" ({detail}{cap})" if detail or cap else ""))
        query = self.admission.query
        how = (f"gpu_memory and max_gpu_util checked with {query.source}" if query is not None
               else "by count")
        return f"GPU pool: {', '.join(gpus)}; each task starts in order where it fits ({how})"

    def close(self) -> None:
        if self.query is not None:
            self.query.close()


def plan_resources(resource: Resource, tasks: Sequence[Task],
                   environ: Mapping[str, str] = os.environ,
                   open_query: Optional[Callable[[], GpuQuery]] = None,
                   cpus: Optional[int] = None) -> Resources:
    """Decide the slots or the admission for these tasks. ResourceError if some can never run."""
    memory = any(t.settings.get("gpu_memory") is not None for t in tasks)
    util = any(t.settings.get("max_gpu_util") is not None for t in tasks)
    counts = {t.settings.get("gpus_per_task", 1) for t in tasks} or {1}
    gpu_settings = memory or util or any("gpus_per_task" in t.settings for t in tasks)
    notices: List[str] = []
    if resource is None:
        if not gpu_settings:
            return Resources([Slot(0, ())])
        notices.append("no 'resource' given: using 'resource: auto' for the GPU settings "
                       f"({_used(tasks)})")
        resource = AUTO_RESOURCE
    if resource != AUTO_RESOURCE and not gpu_settings and not any(resource):
        return Resources([Slot(i, tuple(g)) for i, g in enumerate(resource)], notices=notices)
    query, why = _open(open_query or open_gpus)
    devices: Dict[str, GpuDevice] = {}
    known = query.devices() if query is not None else []
    if resource == AUTO_RESOURCE:
        found, why = auto_pool(query, environ) if query is not None else ([], why)
        if not found:
            if query is not None:
                query.close()
            count = cpus or cpu_count()
            notices.append(f"resource auto: {why}; running {count} tasks at a time without a GPU "
                           f"({CUDA_VISIBLE_DEVICES}='')"
                           + (f"; {_used(tasks)} not applied" if gpu_settings else ""))
            return Resources([Slot(i, ()) for i in range(count)], notices=notices)
        pool = [PoolGpu(str(d.index), d.index) for d in found]
        devices = {str(d.index): d for d in found}
    else:
        devices = _match_ids([g for entry in resource for g in entry], known)
        if not gpu_settings:
            if query is not None:
                query.close()
            return Resources([Slot(i, tuple(g)) for i, g in enumerate(resource)], devices=devices,
                             notices=notices)
        pool = _explicit_pool(resource, devices, known if query is not None else None)
        if (memory or util) and query is None:
            notices.append(f"{_used(tasks, ('gpu_memory', 'max_gpu_util'))} not checked: {why}; "
                           f"tasks run on the listed GPUs by count")
            memory = util = False
    if not memory and not util and len(counts) == 1 and all(g.cap is None for g in pool):
        per_task = counts.pop()
        if per_task > len(pool):
            raise ResourceError(f"gpus_per_task is {per_task}, but the pool has {len(pool)} GPU"
                                f"{'s' if len(pool) != 1 else ''} "
                                f"({', '.join(g.id for g in pool)}); lower gpus_per_task or add "
                                f"GPUs to 'resource'")
        groups = [pool[i:i + per_task] for i in range(0, len(pool) - per_task + 1, per_task)]
        left = pool[len(groups) * per_task:]
        if left:
            notices.append(f"GPU {', '.join(g.id for g in left)} unused: {len(pool)} GPUs do not "
                           f"divide into groups of {per_task} (gpus_per_task)")
        if query is not None:
            query.close()
        return Resources([Slot(i, tuple(g.id for g in group)) for i, group in enumerate(groups)],
                         devices=devices, notices=notices)
    admission = Admission(pool, query if (memory or util) else None)
    try:
        admission.check(tasks)
    except ResourceError:
        if query is not None:
            query.close()
        raise
    return Resources([], admission, devices, notices, query)


def cpu_count() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _open(open_query: Callable[[], GpuQuery]) -> Tuple[Optional[GpuQuery], str]:
    try:
        return open_query(), ""
    except GpuUnavailable as e:
        return None, str(e)


def _used(tasks: Sequence[Task], keys: Sequence[str] = GPU_SETTINGS) -> str:
    used = [k for k in keys if any(k in t.settings for t in tasks)]
    return " and ".join(", ".join(used).rsplit(", ", 1))


def auto_pool(query: GpuQuery, environ: Mapping[str, str]) -> Tuple[List[GpuDevice], str]:
    """The GPUs `auto` may use, or ([], why none): NVML's, within `CUDA_VISIBLE_DEVICES` if set.

    Like CUDA, the list is read up to its first entry that names no GPU.
    """
    devices = query.devices()
    if not devices:
        return [], f"{query.source} reports no GPU"
    visible = environ.get(CUDA_VISIBLE_DEVICES)
    if visible is None:
        return devices, ""
    chosen: List[GpuDevice] = []
    for entry in visible.split(","):
        device = _find(entry.strip(), devices)
        if device is None:
            break
        if device not in chosen:
            chosen.append(device)
    if not chosen:
        return [], (f"{CUDA_VISIBLE_DEVICES}={visible!r} in the runner's environment names none of "
                    f"the {len(devices)} GPUs {query.source} reports")
    return chosen, ""


def _find(entry: str, devices: Sequence[GpuDevice]) -> Optional[GpuDevice]:
    """The device a `CUDA_VISIBLE_DEVICES` entry names: an index or a (prefix of a) UUID."""
    if entry.isdigit():
        index = int(entry)
        return next((d for d in devices if d.index == index), None)
    if not entry:
        return None
    wanted = entry if entry.startswith("GPU-") else "GPU-" + entry
    matches = [d for d in devices if d.uuid.startswith(wanted)]
    return matches[0] if len(matches) == 1 else None


def _match_ids(ids: Sequence[str], devices: Sequence[GpuDevice]) -> Dict[str, GpuDevice]:
    found = {}
    for gpu_id in ids:
        device = _find(gpu_id, devices)
        if device is not None:
            found[gpu_id] = device
    return found


def _explicit_pool(resource: Sequence[Tuple[str, ...]], devices: Dict[str, GpuDevice],
                   known: Optional[List[GpuDevice]]) -> List[PoolGpu]:
    """The GPUs a `resource` list names, once each; a GPU listed k times (k > 1 for some GPU)
    takes at most k tasks at once."""
    order: Dict[str, int] = {}
    for entry in resource:
        if len(entry) != 1:
            shown = ",".join(entry)
            raise ResourceError(
                "resource: with gpus_per_task, gpu_memory or max_gpu_util, 'resource' lists the "
                "GPUs tasks may use, one per entry (e.g. [0, 1, 2, 3]), or is 'auto'; found "
                + (f"the group '{shown}'; set gpus_per_task for several GPUs per task" if shown
                   else "an entry without a GPU"))
        order[entry[0]] = order.get(entry[0], 0) + 1
    if known is not None:
        for gpu_id in order:
            if gpu_id not in devices:
                listed = ", ".join(str(d.index) for d in known) or "none"
                raise ResourceError(f"resource: GPU {gpu_id} is not one of the GPUs this machine "
                                    f"reports ({listed}); list existing GPUs or use "
                                    f"'resource: auto'")
    repeated = any(n > 1 for n in order.values())
    return [PoolGpu(gpu_id, devices[gpu_id].index if gpu_id in devices else None,
                    n if repeated else None) for gpu_id, n in order.items()]
