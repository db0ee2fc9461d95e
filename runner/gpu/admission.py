"""Admission: whether the next task may start now, on which GPUs of the pool, and if not, why.

Plain slots need none of this. Tasks that declare `gpu_memory` (per GPU), `max_gpu_util` or
different `gpus_per_task` are admitted onto GPUs of a pool instead, one decision at a time:

* Memory: a GPU's available memory is what NVML reports free, minus what the tasks this runner
  started there reserved and have not yet allocated. A task's share is its `gpu_memory` minus
  what its own processes (recognised by process group) hold now, so a task that has just started
  keeps its share before it allocates (no start-up race), a task that allocated is not counted
  twice, and one that took more than it declared has the excess counted by NVML. Memory of other
  users' processes is simply not free; the waiting reason says how much they hold.
* Count: a GPU listed k times in `resource` takes at most k of our tasks at once. With `auto` (or
  each GPU listed once) a task with `gpu_memory` shares the GPU as memory allows, and a task
  without it takes its GPUs to itself.
* Utilisation (`max_gpu_util`): a GPU busier than that is skipped; for `grace` seconds after a
  start on a GPU its utilisation is not trusted yet, so tasks gated by it wait for the new
  process to get going.

A task that could not fit even on idle GPUs is found by `check` before anything runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from runner.errors import ResourceError
from runner.gpu.query import GpuQuery, GpuReading, format_bytes
from runner.identity import process_group
from runner.task import Task

DEFAULT_GRACE = 3.0  # seconds a GPU's utilisation is not trusted after a start there
DEFAULT_POLL = 0.5  # seconds between looks at the GPUs while the next task waits
MAX_NAMED = 3


@dataclass(frozen=True)
class Demand:
    """What one task needs: how many GPUs, memory on each (bytes), the highest utilisation (%)."""

    gpus: int = 1
    memory: Optional[int] = None
    max_util: Optional[float] = None

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "Demand":
        return cls(gpus=settings.get("gpus_per_task", 1), memory=settings.get("gpu_memory"),
                   max_util=settings.get("max_gpu_util"))

    def describe(self) -> str:
        parts = [f"{self.gpus} GPU" + ("s" if self.gpus > 1 else "")]
        if self.memory is not None:
            parts.append(f"{format_bytes(self.memory)} each" if self.gpus > 1
                         else format_bytes(self.memory))
        if self.max_util is not None:
            parts.append(f"below {self.max_util:g}% busy")
        return ", ".join(parts)


@dataclass(frozen=True)
class PoolGpu:
    """A GPU tasks may be admitted onto: its id as `CUDA_VISIBLE_DEVICES` gets it, its NVML index
    (None without NVML) and the most tasks of ours it takes at once (None: as memory allows)."""

    id: str
    index: Optional[int] = None
    cap: Optional[int] = None


@dataclass(eq=False)
class Placement:
    """An admitted task's GPUs and reservation. `slot` is set by the scheduler: the tag its
    commands' process groups carry, by which their GPU memory is recognised as this task's."""

    gpus: Tuple[PoolGpu, ...]
    demand: Demand
    exclusive: bool
    slot: Any = None

    @property
    def ids(self) -> Tuple[str, ...]:
        return tuple(g.id for g in self.gpus)


@dataclass
class _GpuState:
    count: int = 0
    exclusive: bool = False
    last_start: float = float("-inf")
    placements: List[Placement] = field(default_factory=list)


class Admission:
    """Admits tasks onto a GPU pool, reserving before they start; thread-safe."""

    def __init__(self, pool: Sequence[PoolGpu], query: Optional[GpuQuery] = None,
                 grace: float = DEFAULT_GRACE, poll: float = DEFAULT_POLL,
                 clock: Callable[[], float] = time.monotonic,
                 group_of: Callable[[int], Optional[int]] = process_group):
        if not pool:
            raise ValueError("admission needs at least one GPU")
        self.pool = list(pool)
        self.query = query
        self.grace = grace
        self.poll = poll
        self.clock = clock
        self.group_of = group_of
        self.owners: Callable[[], Dict[int, Any]] = dict  # process group -> slot, see `attach`
        self._state = {g.id: _GpuState() for g in self.pool}
        self._lock = threading.Lock()

    def attach(self, owners: Callable[[], Dict[int, Any]]) -> None:
        """Where to learn which process group runs for which slot (`ProcessGroups.tags`)."""
        self.owners = owners

    def demand(self, task: Task) -> Demand:
        """What the task needs; without GPU readings, memory and utilisation cannot count."""
        demand = Demand.of(task.settings)
        if self.query is None and (demand.memory is not None or demand.max_util is not None):
            demand = Demand(gpus=demand.gpus)
        return demand

    # -- before anything runs ---------------------------------------------------------------

    def check(self, tasks: Sequence[Task]) -> None:
        """ResourceError naming the tasks that could not start even on idle GPUs."""
        by_demand: Dict[Demand, List[str]] = {}
        for task in tasks:
            by_demand.setdefault(self.demand(task), []).append(task.name)
        totals = self._totals()
        problems = []
        for demand, names in by_demand.items():
            who = _tasks(names)
            if demand.gpus > len(self.pool):
                problems.append(
                    f"{who} {'needs' if len(names) == 1 else 'need'} {demand.gpus} GPUs "
                    f"(gpus_per_task), but the pool has {len(self.pool)} "
                    f"({', '.join(g.id for g in self.pool)}); lower gpus_per_task or add GPUs "
                    f"to 'resource'")
            elif demand.memory is not None and totals:
                fitting = [g for g in self.pool if totals.get(g.id, 0) >= demand.memory]
                if len(fitting) < demand.gpus:
                    largest = max(self.pool, key=lambda g: totals.get(g.id, 0))
                    problems.append(
                        f"{who} {'needs' if len(names) == 1 else 'need'} "
                        f"{format_bytes(demand.memory)} of GPU memory on "
                        + (f"each of {demand.gpus} GPUs" if demand.gpus > 1 else "a GPU")
                        + " (gpu_memory), but "
                        + (f"only {len(fitting)} GPU(s) of the pool have that much"
                           if fitting else f"the largest GPU of the pool (GPU {largest.id}) has "
                           f"{format_bytes(totals.get(largest.id, 0))}")
                        + "; lower gpu_memory or use larger GPUs")
        if problems:
            raise ResourceError("these tasks can never start: " + "; ".join(problems))

    def _totals(self) -> Dict[str, int]:
        if self.query is None:
            return {}
        devices = {d.index: d for d in self.query.devices()}
        return {g.id: devices[g.index].memory_total for g in self.pool if g.index in devices}

    # -- while running ------------------------------------------------------------------------

    def admit(self, task: Task) -> Tuple[Optional[Placement], str]:
        """(placement, "") with the GPUs reserved, or (None, why the task has to wait)."""
        demand = self.demand(task)
        readings = self._read() if self.query is not None and (
            demand.memory is not None or demand.max_util is not None) else None
        with self._lock:
            now = self.clock()
            usage = self._usage(readings) if readings is not None else None
            fits: List[Tuple[int, int, int]] = []  # (-available, our tasks there, position)
            blocked: List[Tuple[float, int, str, tuple]] = []  # (closeness, position, why, data)
            for position, gpu in enumerate(self.pool):
                state = self._state[gpu.id]
                why, closeness, data = self._judge(gpu, state, demand, now, readings, usage)
                if why:
                    blocked.append((closeness, -position, why, data))
                else:
                    fits.append((-data[0], state.count, position))
            if len(fits) < demand.gpus:
                return None, self._reason(demand, len(fits), blocked)
            chosen = tuple(self.pool[p] for p in sorted(f[2] for f in sorted(fits)[:demand.gpus]))
            placement = Placement(chosen, demand,
                                  exclusive=demand.memory is None and chosen[0].cap is None)
            for gpu in chosen:
                state = self._state[gpu.id]
                state.count += 1
                state.exclusive = placement.exclusive
                state.last_start = now
                state.placements.append(placement)
            return placement, ""

    def _judge(self, gpu: PoolGpu, state: _GpuState, demand: Demand, now: float,
               readings: Optional[Dict[str, GpuReading]], usage: Optional[Dict[str, Tuple]]
               ) -> Tuple[str, float, tuple]:
        """(why not, how close it came, data) for one GPU; why is '' when the task fits, and
        data is then (available memory,). Words are made only for the reason shown (`_say`)."""
        if state.exclusive:
            return "alone", -2, (gpu.id,)
        if demand.memory is None and gpu.cap is None and state.count:
            return "shared", -2, (gpu.id, state.count)
        if gpu.cap is not None and state.count >= gpu.cap:
            return "cap", -2, (gpu.id, state.count)
        if readings is None:
            return "", 0, (0,)
        reading = readings[gpu.id]
        if reading.error:
            return "error", -3, (gpu.id, reading.error)
        available = 0
        if demand.memory is not None:
            outstanding, foreign = usage[gpu.id]
            available = reading.memory_free - outstanding
            if available < demand.memory:
                return "memory", available / demand.memory, (gpu.id, available, foreign,
                                                              demand.memory)
        if demand.max_util is not None:
            settling = state.last_start + self.grace - now
            if settling > 0:
                return "settling", -0.5, (gpu.id, now - state.last_start, settling)
            if reading.utilization is not None and reading.utilization > demand.max_util:
                return "busy", -1, (gpu.id, reading.utilization, demand.max_util)
        return "", 0, (available,)

    @staticmethod
    def _say(why: str, data: tuple) -> str:
        """One GPU's reason in words."""
        gpu_id = data[0]
        if why == "alone":
            return f"GPU {gpu_id} runs a task that has it to itself"
        if why in ("shared", "cap"):
            count = data[1]
            return (f"GPU {gpu_id} runs {count} task" + ("s" if count > 1 else "")
                    + (" (a task without gpu_memory takes a GPU to itself)" if why == "shared"
                       else ", as many as 'resource' lists it"))
        if why == "error":
            return f"GPU {gpu_id}: {data[1]}"
        if why == "memory":
            _, available, foreign, needed = data
            others = f" (other processes hold {format_bytes(foreign)})" if foreign else ""
            return (f"GPU {gpu_id} has {format_bytes(max(available, 0))} free{others}, "
                    f"needs {format_bytes(needed)}")
        if why == "settling":
            return (f"GPU {gpu_id} started a task {data[1]:.1f} s ago; its utilisation settles "
                    f"for {data[2]:.1f} s more")
        return f"GPU {gpu_id} is {data[1]:.0f}% busy, max_gpu_util {data[2]:g}%"

    def _reason(self, demand: Demand, fitting: int,
                blocked: List[Tuple[float, int, str, tuple]]) -> str:
        """The GPU that came closest, said plainly; the others counted."""
        if blocked:
            _, _, why, data = max(blocked, key=lambda b: b[:2])
            closest = self._say(why, data)
        else:
            closest = "no GPU in the pool"
        others = len(blocked) - 1
        more = (f"; {others} other GPU{'s' if others > 1 else ''} cannot take it either"
                if others > 0 else "")
        if demand.gpus > 1:
            return f"{fitting} of the {demand.gpus} GPUs the task needs are free; {closest}{more}"
        return closest + more

    def _read(self) -> Dict[str, GpuReading]:
        return {g.id: self.query.read(g.index) for g in self.pool}

    def _usage(self, readings: Dict[str, GpuReading]) -> Dict[str, Tuple[int, int]]:
        """GPU id -> (memory our tasks reserved and have not allocated, memory of others)."""
        owners = self.owners()
        groups: Dict[int, Optional[int]] = {}
        out = {}
        for gpu in self.pool:
            reading = readings[gpu.id]
            held: Dict[int, int] = {}  # id(placement) -> memory its processes hold here
            foreign = 0
            for proc in reading.processes:
                if proc.pid not in groups:
                    groups[proc.pid] = self.group_of(proc.pid)
                slot = owners.get(groups[proc.pid]) if groups[proc.pid] is not None else None
                owner = next((p for p in self._state[gpu.id].placements
                              if slot is not None and p.slot == slot), None)
                if owner is None:
                    foreign += proc.memory or 0
                else:
                    held[id(owner)] = held.get(id(owner), 0) + (proc.memory or 0)
            outstanding = sum(max(0, p.demand.memory - held.get(id(p), 0))
                              for p in self._state[gpu.id].placements
                              if p.demand.memory is not None)
            out[gpu.id] = (outstanding, foreign)
        return out

    def release(self, placement: Placement) -> None:
        """The task has ended: its GPUs and reservation are free again."""
        with self._lock:
            for gpu in placement.gpus:
                state = self._state[gpu.id]
                if placement in state.placements:
                    state.placements.remove(placement)
                    state.count -= 1
                    if placement.exclusive:
                        state.exclusive = False

    def retry_after(self) -> float:
        """How long to wait before asking again when nothing of ours ends meanwhile."""
        now = self.clock()
        settling = [s.last_start + self.grace - now for s in self._state.values()
                    if s.last_start + self.grace > now]
        return max(0.01, min([self.poll, *settling]))


def _tasks(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    more = f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return (f"task {shown}" if len(names) == 1 else f"{len(names)} tasks ({shown}{more})")
