"""Fake GPUs for tests and benches: a script of memory, utilisation and processes over time.

`RUNNER_FAKE_GPUS=gpus.json` makes `open_gpus()` return `FakeGpus.load(path)` instead of NVML.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from runner.errors import ResourceError
from runner.gpu.query import FAKE_GPUS_ENV, GpuDevice, GpuProcess, GpuQuery, GpuReading
from runner.identity import is_alive
from runner.spec.settings import parse_memory, parse_percent


@dataclass
class Window:
    """When a scripted thing is there: from `start` to `until` seconds after the fake started,
    and only after `after_file` exists / until `until_file` exists (paths)."""

    start: float = 0.0
    until: Optional[float] = None
    after_file: Optional[str] = None
    until_file: Optional[str] = None

    def active(self, elapsed: float) -> bool:
        if elapsed < self.start or (self.until is not None and elapsed >= self.until):
            return False
        if self.after_file is not None and not os.path.exists(self.after_file):
            return False
        return self.until_file is None or not os.path.exists(self.until_file)


@dataclass
class FakeProcess:
    """A scripted process on a fake GPU; its pid is `pid`, or read from `pid_file` while that
    file holds the pid of a live process (so a test's own command can appear on the GPU, and
    is gone from it once it ends, as with NVML)."""

    memory: int
    pid: Optional[int] = None
    pid_file: Optional[str] = None
    window: Window = field(default_factory=Window)

    def current_pid(self) -> Optional[int]:
        if self.pid_file is None:
            return self.pid
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_alive(pid, None) else None


@dataclass
class FakeGpu:
    """A scripted GPU: `used` is memory taken by nothing listed (driver, display)."""

    name: str
    memory_total: int
    uuid: str = ""
    used: int = 0
    utilization: float = 0.0
    busy: List[Tuple[float, Window]] = field(default_factory=list)  # (percent, when)
    processes: List[FakeProcess] = field(default_factory=list)


class FakeGpus(GpuQuery):
    """GPUs that follow a script over time (see `load` for the JSON form); a testing aid.

    `clock` gives seconds (time.monotonic by default); the script's times count from the moment
    the fake is created. Tests may also change it while it runs (`add_process`, `set_busy`).
    """

    source = "fake GPUs"

    def __init__(self, gpus: Sequence[FakeGpu], clock: Callable[[], float] = time.monotonic,
                 source: str = "fake GPUs"):
        self.gpus = list(gpus)
        for i, gpu in enumerate(self.gpus):
            gpu.uuid = gpu.uuid or f"GPU-fake-{i:04d}"
        self.clock = clock
        self.started = clock()
        self.source = source
        self._lock = threading.Lock()

    def devices(self) -> List[GpuDevice]:
        return [GpuDevice(i, g.uuid, g.name, g.memory_total, f"00000000:{i + 1:02X}:00.0")
                for i, g in enumerate(self.gpus)]

    def read(self, index: int) -> GpuReading:
        elapsed = self.clock() - self.started
        with self._lock:
            gpu = self.gpus[index]
            processes = []
            for proc in gpu.processes:
                pid = proc.current_pid() if proc.window.active(elapsed) else None
                if pid is not None:
                    processes.append(GpuProcess(pid, proc.memory))
            utilization = next((p for p, w in gpu.busy if w.active(elapsed)), gpu.utilization)
        used = min(gpu.memory_total, gpu.used + sum(p.memory or 0 for p in processes))
        return GpuReading(index, gpu.memory_total, used, gpu.memory_total - used, utilization,
                          tuple(processes))

    def add_process(self, index: int, pid: int, memory: int, **window: Any) -> FakeProcess:
        """Put a process on GPU `index` now (keyword arguments: `Window` fields)."""
        proc = FakeProcess(memory=memory, pid=pid, window=Window(**window))
        with self._lock:
            self.gpus[index].processes.append(proc)
        return proc

    def remove_process(self, index: int, proc: FakeProcess) -> None:
        with self._lock:
            self.gpus[index].processes.remove(proc)

    def set_busy(self, index: int, percent: float) -> None:
        with self._lock:
            self.gpus[index].utilization = percent

    @classmethod
    def load(cls, path: str, clock: Callable[[], float] = time.monotonic) -> "FakeGpus":
        """Read a fake machine from JSON; relative file names are relative to the JSON file::

            {"gpus": [{"name": "Fake A100", "memory": "40GiB", "used": "500MiB",
                       "utilization": 0,
                       "busy": [{"percent": 95, "until": 2.5}],
                       "processes": [{"pid": 4242, "memory": "30GiB", "until_file": "free"},
                                     {"pid_file": "task.pid", "memory": "8GiB"}]}]}

        A window (of `busy` and `processes` entries) is `from`/`until` (seconds since the fake
        started) and `after_file`/`until_file` (there only after / until that file exists).
        """
        where = f"${FAKE_GPUS_ENV}={path}"
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise ResourceError(f"{where}: cannot read the fake GPUs: {e}") from None
        base = os.path.dirname(os.path.abspath(path))
        try:
            return cls(_parse_fake(data, base), clock, source=f"fake GPUs from {path}")
        except (ValueError, TypeError, KeyError) as e:
            raise ResourceError(f"{where}: {e}; see FakeGpus.load in runner/gpu.py for the "
                                f"form") from None


_WINDOW_KEYS = {"from": "start", "until": "until", "after_file": "after_file",
                "until_file": "until_file"}


def _parse_window(entry: Dict[str, Any], base: str) -> Window:
    fields = {}
    for key, name in _WINDOW_KEYS.items():
        if key in entry:
            value = entry[key]
            fields[name] = (os.path.join(base, value) if name.endswith("_file") else float(value))
    return Window(**fields)


def _parse_fake(data: Any, base: str) -> List[FakeGpu]:
    if not isinstance(data, dict) or not isinstance(data.get("gpus"), list):
        raise ValueError("expected an object with 'gpus': a list of GPUs")
    gpus = []
    for i, entry in enumerate(data["gpus"]):
        if not isinstance(entry, dict) or "memory" not in entry:
            raise ValueError(f"gpus[{i}]: expected an object with at least 'memory' (e.g. '24GiB')")
        known = {"name", "memory", "uuid", "used", "utilization", "busy", "processes"}
        unknown = set(entry) - known
        if unknown:
            raise ValueError(f"gpus[{i}]: unknown keys {sorted(unknown)}; known are "
                             f"{sorted(known)}")
        processes = []
        for j, proc in enumerate(entry.get("processes", [])):
            if "pid" not in proc and "pid_file" not in proc:
                raise ValueError(f"gpus[{i}].processes[{j}]: needs 'pid' or 'pid_file'")
            processes.append(FakeProcess(
                memory=parse_memory(proc.get("memory", "0B")),
                pid=int(proc["pid"]) if "pid" in proc else None,
                pid_file=os.path.join(base, proc["pid_file"]) if "pid_file" in proc else None,
                window=_parse_window(proc, base)))
        busy = [(parse_percent(b["percent"]), _parse_window(b, base))
                for b in entry.get("busy", [])]
        gpus.append(FakeGpu(name=str(entry.get("name", "Fake GPU")),
                            memory_total=parse_memory(entry["memory"]),
                            uuid=str(entry.get("uuid", "")),
                            used=parse_memory(entry.get("used", "0B")),
                            utilization=parse_percent(entry.get("utilization", 0)),
                            busy=busy, processes=processes))
    return gpus
