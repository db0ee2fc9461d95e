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
