"""What the runner asks about GPUs, behind one small interface.

`GpuQuery` is the interface: `devices()` (what each GPU is) and `read(index)` (its memory,
utilisation and processes now). `NvmlGpus` asks the NVIDIA driver through NVML (the `pynvml`
module of NVIDIA's `nvidia-ml-py`, imported in `_import_pynvml` and nowhere else); `FakeGpus`
follows a script of memory, utilisation and foreign processes over time, for tests and benches.
`runner.gpu.open_gpus()` picks one: the fake when `$RUNNER_FAKE_GPUS` names a JSON file (a
testing aid), NVML otherwise. Indices are NVML's, which are CUDA's under
`CUDA_DEVICE_ORDER=PCI_BUS_ID`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from runner.errors import ResourceError, install_hint

FAKE_GPUS_ENV = "RUNNER_FAKE_GPUS"
NVML_EXTRA = install_hint("gpu")
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
