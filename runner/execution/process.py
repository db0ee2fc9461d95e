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
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Union

SHELL = "/bin/sh"
DEFAULT_GRACE = 10.0  # seconds between TERM and KILL


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


class Child:
    """A started command: its pid (= its process group), its exit status once waited for."""

    __slots__ = ("pid", "stdout", "returncode")

    def __init__(self, pid: int, stdout: Optional[IO[bytes]] = None):
        self.pid = pid
        self.stdout = stdout  # our end of its output, with `subprocess.PIPE`
        self.returncode: Optional[int] = None

    def wait(self) -> int:
        """Its exit status; minus the signal number when a signal killed it (as Popen's)."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> Optional[int]:
        """Its exit status if it has ended, else None (without waiting)."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


_RESET_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ")
                       if hasattr(signal, name))  # Python ignores these; commands must not


_checked_fds: set = set()  # descriptors already found close-on-exec


def _close_on_exec() -> None:
    """Mark every descriptor above 2 close-on-exec (what the runner inherited, or a C library
    opened), so that a command gets stdin, stdout and stderr only. Python opens every descriptor
    close-on-exec, so only numbers not seen before need a look."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in _checked_fds:
            try:
                if os.get_inheritable(fd):
                    os.set_inheritable(fd, False)
                else:
                    _checked_fds.add(fd)
            except OSError:  # the descriptor listdir itself used, now closed
                pass


def start_child(argv: Sequence[str], env: Mapping, output: Union[int, None],
                errors: Union[int, None]) -> Child:
    """Start `argv` as the leader of a new session and process group, stdin from /dev/null,
    and no other descriptor of ours than the `output` and `errors` it is given.

    `os.posix_spawn` costs a seventh of `subprocess.Popen`'s CPU time in the runner, which a
    sweep of short tasks feels; where it or /proc is missing, Popen does the same job.
    """
    if not hasattr(os, "posix_spawn") or not os.path.isdir("/proc/self/fd"):
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=errors,
                                env=env, start_new_session=True, close_fds=True)
        child = Child(proc.pid, proc.stdout)
        child.wait = proc.wait  # type: ignore[method-assign]
        child.poll = proc.poll  # type: ignore[method-assign]
        return child
    actions: List[tuple] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    reader = writer = None
    if output == subprocess.PIPE:
        reader, writer = os.pipe()
        actions.append((os.POSIX_SPAWN_DUP2, writer, 1))
    elif output is not None:
        actions.append((os.POSIX_SPAWN_DUP2, output, 1))
    if errors == subprocess.STDOUT:
        actions.append((os.POSIX_SPAWN_DUP2, 1, 2))
    elif errors is not None:
        actions.append((os.POSIX_SPAWN_DUP2, errors, 2))
    _close_on_exec()
    try:
        pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions, setsid=True,
                             setsigdef=_RESET_SIGNALS, setsigmask=())
    except BaseException:
        if reader is not None:
            os.close(reader)
        raise
    finally:
        if writer is not None:
            os.close(writer)
    return Child(pid, os.fdopen(reader, "rb", buffering=0) if reader is not None else None)


class ProcessGroups:
    """The running commands of one invocation, and the switch that stops them all."""

    def __init__(self, grace: float = DEFAULT_GRACE, watcher: Any = None):
        self.grace = grace
        self.watcher = watcher  # told of each group that starts and ends (a `Guardian`)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: Dict[int, Child] = {}
        self._tags: Dict[int, Any] = {}
        self._killed = False
        self._timer: Optional[threading.Timer] = None

    def spawn(self, command: str, env: Mapping, output: Union[int, None],
              errors: Union[int, None] = subprocess.STDOUT, tag: Any = None
              ) -> Optional["Child"]:
        """Start `command` through the shell in a new process group; None once stopping.

        Its stdout goes to `output` (a descriptor, `subprocess.PIPE`, or None to inherit ours),
        its stderr to `errors` (default: with stdout). `tag` (the slot) is what `tags()`
        answers for the group while it runs.
        """
        if self.stopping.is_set():
            return None
        proc = start_child([SHELL, "-c", command], env, output, errors)
        if self.watcher is not None:
            self.watcher.started(proc.pid, self.grace)
        with self._lock:
            self._running[proc.pid] = proc
            self._tags[proc.pid] = tag
            late = self.stopping.is_set()  # stop() ran while we started it and did not see it
            killed = self._killed
        if late:
            signal_group(proc.pid, signal.SIGKILL if killed else signal.SIGTERM)
        return proc

    def finish(self, proc: "Child") -> None:
        """Forget a command that ended, killing whatever it left running in its group."""
        with self._lock:
            self._running.pop(proc.pid, None)
            self._tags.pop(proc.pid, None)
        signal_group(proc.pid, signal.SIGKILL)
        if self.watcher is not None:
            self.watcher.ended(proc.pid)

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
