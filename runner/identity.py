"""Which process is which: the host name, and a process known by its pid *and* start time.

A pid alone can be reused by the system; the start time (clock ticks since boot, from /proc)
tells a live process apart from a later one with the same pid.
"""

from __future__ import annotations

import os
import socket
from typing import Optional

HOST = socket.gethostname()


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


MARKER = "RUNNER_INVOCATION"  # in the environment of every command the runner starts


def invocation_mark(pid: int, started: Optional[int]) -> str:
    """The value of MARKER for the commands of the invocation `pid` that started at `started`."""
    return f"{pid}.{started}"


def _has_mark(pid: int, mark: str) -> Optional[bool]:
    """Whether the process's environment carries `MARKER=mark`; None when the OS does not show
    it (another user's process, no /proc)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read(1 << 20)
    except OSError:
        return None
    return f"{MARKER}={mark}".encode() in environ.split(b"\0")


def describe_invocation(pid: Optional[int] = None) -> dict:
    """This process (or `pid`) as a record that `is_live_invocation` can check later."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "pid_start": start_time(pid), "host": HOST}


def is_live_invocation(record: dict) -> bool:
    """Whether a recorded `run` invocation still runs here: same host, alive, and started at the
    recorded time (without one, nothing is provable)."""
    pid, started = record.get("pid"), record.get("pid_start")
    return (record.get("host") == HOST and type(pid) is int and pid > 0
            and type(started) is int and is_alive(pid, started))


def is_ours(entry: dict) -> bool:
    """Whether the process an entry of `stat.json` (or `job.json`) records is provably the one
    the runner started: same host, alive, the recorded start time (without one, nothing is
    provable), and, where the OS shows its environment, the invocation's marker.

    The one place that decides whether a process may be signalled.
    """
    pid, started = entry.get("pid"), entry.get("pid_start")
    if entry.get("host") != HOST or type(pid) is not int or pid <= 0 or type(started) is not int:
        return False
    if not is_alive(pid, started):
        return False
    mark = invocation_mark(entry.get("runner_pid"), entry.get("runner_start"))
    return _has_mark(pid, mark) is not False
