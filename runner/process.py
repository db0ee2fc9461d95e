"""Child processes: each command in its own process group, all of them stoppable at once.

`ProcessGroups` is the one registry of running commands of an invocation. Stopping it (Ctrl-C,
SIGTERM) sends TERM to every group, then KILL after a grace period; a second stop kills at once.
A process is identified by its pid *and* its start time, so a pid reused by the system is never
mistaken for one of ours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import IO, Any, Dict, Mapping, Optional, Sequence, Union

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"
PCI_BUS_ID = "PCI_BUS_ID"
SHELL = "/bin/sh"
DEFAULT_GRACE = 10.0  # seconds between TERM and KILL


def gpu_environment(base: Mapping[str, str], gpus: Optional[Sequence[str]]) -> Dict[str, str]:
    """The environment of a command bound to `gpus` (None: leave the GPU variables alone)."""
    env = dict(base)
    if gpus is not None:
        env[CUDA_VISIBLE_DEVICES] = ",".join(gpus)
        env[CUDA_DEVICE_ORDER] = PCI_BUS_ID
    return env


def _proc_stat(pid: int) -> Optional[tuple]:
    """(state, start time in clock ticks since boot) from /proc (Linux), None if gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fields = os.read(fd, 4096).rsplit(b")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None
    finally:
        os.close(fd)


def process_group(pid: int) -> Optional[int]:
    """The process group of `pid` (Linux /proc), or None if it is gone or cannot be seen."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int) -> Optional[int]:
    """The process's start time in clock ticks since boot (Linux), or None if it is gone."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


def is_alive(pid: Optional[int], started: Optional[int]) -> bool:
    """Whether the process `pid` that started at `started` still runs (zombies count as gone)."""
    if not pid:
        return False
    if os.path.isdir("/proc/self"):
        stat = _proc_stat(pid)
        return stat is not None and stat[0] != b"Z" and started in (None, stat[1])
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def stop_group(pgid: int, grace: float = DEFAULT_GRACE) -> None:
    """TERM the group, wait up to `grace` seconds for it to go, then KILL what is left."""
    if not signal_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    signal_group(pgid, signal.SIGKILL)


class ProcessGroups:
    """The running commands of one invocation, and the switch that stops them all."""

    def __init__(self, grace: float = DEFAULT_GRACE):
        self.grace = grace
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: Dict[int, subprocess.Popen] = {}
        self._tags: Dict[int, Any] = {}
        self._killed = False
        self._timer: Optional[threading.Timer] = None

    def spawn(self, command: str, env: Mapping[str, str], output: Union[int, IO[bytes], None],
              errors: Union[int, IO[bytes], None] = subprocess.STDOUT, tag: Any = None
              ) -> Optional[subprocess.Popen]:
        """Start `command` through the shell in a new process group; None once stopping.

        Its stdout goes to `output`, its stderr to `errors` (default: with stdout). `tag` (the
        slot) is what `tags()` answers for the group while it runs.
        """
        if self.stopping.is_set():
            return None
        proc = subprocess.Popen(
            [SHELL, "-c", command], stdin=subprocess.DEVNULL, stdout=output, stderr=errors,
            env=env, start_new_session=True, close_fds=True)
        with self._lock:
            self._running[proc.pid] = proc
            self._tags[proc.pid] = tag
            late = self.stopping.is_set()  # stop() ran while we started it and did not see it
            killed = self._killed
        if late:
            signal_group(proc.pid, signal.SIGKILL if killed else signal.SIGTERM)
        return proc

    def finish(self, proc: subprocess.Popen) -> None:
        """Forget a command that ended, killing whatever it left running in its group."""
        with self._lock:
            self._running.pop(proc.pid, None)
            self._tags.pop(proc.pid, None)
        signal_group(proc.pid, signal.SIGKILL)

    def tags(self) -> Dict[int, Any]:
        """Process group id -> tag given to `spawn`, for every running command."""
        with self._lock:
            return dict(self._tags)

    def stop(self) -> None:
        """First call: TERM every group, KILL after the grace period. Second call: KILL now."""
        with self._lock:
            first = not self.stopping.is_set()
            self.stopping.set()
            pids = list(self._running)
        if first:
            for pid in pids:
                signal_group(pid, signal.SIGTERM)
            self._timer = threading.Timer(self.grace, self.kill)
            self._timer.daemon = True
            self._timer.start()
        else:
            self.kill()

    def kill(self) -> None:
        with self._lock:
            self._killed = True
            pids = list(self._running)
        for pid in pids:
            signal_group(pid, signal.SIGKILL)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)
