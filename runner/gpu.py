"""What the runner asks about GPUs, behind one small interface.

`GpuQuery` is the interface: `devices()` (what each GPU is) and `read(index)` (its memory,
utilisation and processes now). `NvmlGpus` asks the NVIDIA driver through NVML (the `pynvml`
module of NVIDIA's `nvidia-ml-py`, imported in `_import_pynvml` and nowhere else); `FakeGpus`
follows a script of memory, utilisation and foreign processes over time, for tests and benches.
`open_gpus()` picks one: the fake when `$RUNNER_FAKE_GPUS` names a JSON file (a testing aid),
NVML otherwise. Indices are NVML's, which are CUDA's under `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from runner.errors import ResourceError
from runner.process import is_alive
from runner.settings import parse_memory, parse_percent

FAKE_GPUS_ENV = "RUNNER_FAKE_GPUS"
NVML_EXTRA = "pip install 'runner[gpu]'"
GIB = 2 ** 30


class GpuUnavailable(ResourceError):
    """No GPU information here: NVML is not installed, no driver, or NVML failed to start."""


@dataclass(frozen=True)
class GpuDevice:
    """What a GPU is: its NVML index, UUID, name and total memory (bytes)."""

    index: int
    uuid: str
    name: str
    memory_total: int
    pci_bus_id: str = ""

    def to_json(self) -> Dict[str, Any]:
        """The fields `stat.json` records for a GPU a command ran on."""
        return {"index": self.index, "uuid": self.uuid, "name": self.name,
                "memory_total": self.memory_total}


@dataclass(frozen=True)
class GpuProcess:
    """A process that holds memory on a GPU; `memory` is None when NVML cannot tell."""

    pid: int
    memory: Optional[int] = None


@dataclass(frozen=True)
class GpuReading:
    """One GPU now. `utilization` (%) is None where the GPU does not report it; `error` says why
    a GPU could not be read (it is then never chosen)."""

    index: int
    memory_total: int
    memory_used: int
    memory_free: int
    utilization: Optional[float] = None
    processes: Tuple[GpuProcess, ...] = ()
    error: Optional[str] = None


class GpuQuery:
    """The GPUs of this machine: subclasses answer `devices` and `read`; `close` ends a session."""

    source = "GPUs"

    def devices(self) -> List[GpuDevice]:
        raise NotImplementedError

    def read(self, index: int) -> GpuReading:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the query holds (idempotent)."""


def open_gpus(environ: Mapping[str, str] = os.environ) -> GpuQuery:
    """The machine's GPUs: fake ones from `$RUNNER_FAKE_GPUS` (a JSON file), else NVML.

    Raises GpuUnavailable with the reason when there is no GPU information at all.
    """
    path = environ.get(FAKE_GPUS_ENV)
    if path:
        return FakeGpus.load(path)
    return NvmlGpus()


def format_bytes(size: Optional[float]) -> str:
    """10737418240 -> '10.0 GiB' (MiB below 1 GiB)."""
    if size is None:
        return "?"
    if abs(size) >= GIB:
        return f"{size / GIB:.1f} GiB"
    return f"{size / 2 ** 20:.0f} MiB"


# -- NVML --------------------------------------------------------------------------------------


def _import_pynvml():
    """The one place that imports NVML's Python binding."""
    try:
        import pynvml
    except ImportError:
        raise GpuUnavailable(f"NVML is not available: the Python module 'pynvml' is not "
                             f"installed ({NVML_EXTRA})") from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class NvmlGpus(GpuQuery):
    """The GPUs the NVIDIA driver reports, through NVML; GpuUnavailable if NVML cannot start."""

    source = "NVML"

    def __init__(self) -> None:
        nvml = self._nvml = _import_pynvml()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise GpuUnavailable(f"NVML is not available: {self._explain(e)}") from None
        except OSError as e:  # the library loaded but something below it failed
            raise GpuUnavailable(f"NVML is not available: {e}") from None
        self._open = True  # NVML itself is thread-safe: no lock of ours around its calls
        try:
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._devices = [self._describe(i, h) for i, h in enumerate(self._handles)]
        except nvml.NVMLError as e:
            self.close()
            raise GpuUnavailable(f"NVML cannot list the GPUs: {self._explain(e)}") from None

    def _explain(self, error: Exception) -> str:
        nvml = self._nvml
        value = getattr(error, "value", None)
        if value == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", -1):
            return "the NVIDIA driver's library libnvidia-ml.so.1 was not found (no NVIDIA driver?)"
        if value == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", -1):
            return "the NVIDIA driver is not loaded"
        if value == getattr(nvml, "NVML_ERROR_NO_PERMISSION", -1):
            return "no permission to talk to the NVIDIA driver"
        return str(error) or type(error).__name__

    def _describe(self, index: int, handle: Any) -> GpuDevice:
        nvml = self._nvml
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        try:
            bus = _text(nvml.nvmlDeviceGetPciInfo(handle).busId)
        except nvml.NVMLError:
            bus = ""
        return GpuDevice(index=index, uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                         name=_text(nvml.nvmlDeviceGetName(handle)),
                         memory_total=int(memory.total), pci_bus_id=bus)

    def devices(self) -> List[GpuDevice]:
        return list(self._devices)

    def read(self, index: int) -> GpuReading:
        nvml = self._nvml
        handle = self._handles[index]
        try:
            # Processes first, memory second: a process that allocates between the two calls is
            # then counted as free memory gone (safe), never as memory of ours already in use.
            processes = self._processes(handle)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        except nvml.NVMLError as e:
            device = self._devices[index]
            return GpuReading(index, device.memory_total, device.memory_total, 0,
                              error=f"NVML cannot read it: {self._explain(e)}")
        try:
            utilization: Optional[float] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except nvml.NVMLError:  # not supported (some GPUs, MIG, vGPU)
            utilization = None
        return GpuReading(index=index, memory_total=int(memory.total),
                          memory_used=int(memory.used), memory_free=int(memory.free),
                          utilization=utilization, processes=processes)

    def _processes(self, handle: Any) -> Tuple[GpuProcess, ...]:
        nvml = self._nvml
        found: Dict[int, Optional[int]] = {}
        for getter in (nvml.nvmlDeviceGetComputeRunningProcesses,
                       nvml.nvmlDeviceGetGraphicsRunningProcesses):
            try:
                listed = getter(handle)
            except nvml.NVMLError:  # not supported or no permission: nothing known
                continue
            for proc in listed:
                used = getattr(proc, "usedGpuMemory", None)
                memory = int(used) if isinstance(used, int) else None
                previous = found.get(int(proc.pid))
                found[int(proc.pid)] = (memory if previous is None
                                        else max(previous, memory or 0))
        return tuple(GpuProcess(pid, memory) for pid, memory in sorted(found.items()))

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass


# -- the fake ----------------------------------------------------------------------------------


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
