"""The guardian: a small process that stops our commands when the process that started them
dies, however it dies (kill -9, the OOM killer).

A long-lived process that runs tasks in its own threads (a dask worker of `run worker`) has
no one to stop its commands if it is killed: each command is the leader of a process group of
its own, and would live on. So it starts a guardian, a process of its own session, and tells it
through a pipe about every command: `+ PID START GRACE` when one starts (its pid, its start time
in clock ticks, the grace period), `- PID` when it has ended. When the pipe ends (the starter is
gone, or closed it), the guardian stops every group still recorded whose leader is provably the
process that was started (the same pid *and* start time): TERM, KILL after the grace period.
Then it exits. The starter's side is `Guardian`, the watcher of a `ProcessGroups`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Dict, Optional, Tuple

from runner.identity import is_alive, start_time

POLL = 0.05


class Guardian:
    """The starter's end: started on first use, again if it died; one per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None

    def started(self, pid: int, grace: float) -> None:
        self._say(f"+ {pid} {start_time(pid)} {grace:g}\n")

    def ended(self, pid: int) -> None:
        self._say(f"- {pid}\n")

    def _say(self, line: str) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, close_fds=True, start_new_session=True)
            try:
                self._proc.stdin.write(line.encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._proc = None

    def close(self) -> None:
        """Stop the guardian (it stops what is still recorded) and wait for it."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            proc.stdin.close()
            proc.wait()


def stop_groups(groups: Dict[int, Tuple[Optional[int], float]]) -> None:
    """TERM every group whose leader is still the process recorded, KILL after its grace."""
    deadline: Dict[int, float] = {}
    for pid, (started, grace) in groups.items():
        if started is not None and is_alive(pid, started):
            try:
                os.killpg(pid, signal.SIGTERM)
                deadline[pid] = time.monotonic() + grace
            except OSError:
                pass
    while deadline:
        now = time.monotonic()
        for pid, until in list(deadline.items()):
            alive = True
            try:
                os.killpg(pid, 0)
            except OSError:
                alive = False
            if not alive:
                del deadline[pid]
            elif now >= until:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                del deadline[pid]
        time.sleep(POLL)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the starter's terminal is not ours
    groups: Dict[int, Tuple[Optional[int], float]] = {}
    for raw in sys.stdin.buffer:
        parts = raw.split()
        try:
            if parts[:1] == [b"+"] and len(parts) == 4:
                started = None if parts[2] == b"None" else int(parts[2])
                groups[int(parts[1])] = (started, float(parts[3]))
            elif parts[:1] == [b"-"] and len(parts) == 2:
                groups.pop(int(parts[1]), None)
        except ValueError:
            continue
    stop_groups(groups)


if __name__ == "__main__":
    main()
