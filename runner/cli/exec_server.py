"""The exec server of a dask worker: one process that has imported the runner once and forks a
`run exec-task` for each task the worker gets.

`python -m runner exec-task TABLE INDEX ...` spends about a tenth of a second importing Python
before it does anything; a worker that runs many short tasks would spend most of its time there.
This server does those imports once. For each task it forks a child that runs exec-task's `main`
with the task's arguments: the same single-task executor, files and exit status as the command
line, in a process of its own (its memory, its signal handlers, its current directory, freed when
it ends), at the cost of a fork. Started as `python -m runner.cli.exec_server` by the worker (see
`runner.backends.dask.remote`), one per worker process, in a session of its own.

Protocol, one JSON object per line. Requests on stdin::

    {"op": "start", "id": N, "argv": [...]}    fork child N: `run exec-task ARGV`
    {"op": "signal", "id": N, "signal": S}    send signal S to child N if it has not ended

Replies on stdout::

    {"id": N, "pid": P}                       child N runs as process P
    {"id": N, "exit": C, "output": "..."}    child N ended: its exit status (minus the signal
                                              that killed it), the end of what it printed

No command outlives its worker: when stdin ends (the worker process is gone, however it died)
every child gets SIGTERM, stops its command as on Ctrl-C (TERM, KILL after its grace period,
recorded `interrupted`), and the server exits once they all have; each child also gets SIGTERM
when the server itself dies (Linux's parent-death signal).
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import sys
from dataclasses import dataclass, field
from typing import Dict, Optional

OUTPUT_TAIL = 8192  # bytes of a child's output sent back when it ends
EXIT_INTERRUPTED = 130
_PR_SET_PDEATHSIG = 1


def _load_prctl():
    """libc's prctl (Linux), loaded before any fork; None elsewhere."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


@dataclass
class _Child:
    ident: int
    pid: int
    output: Optional[int]  # our end of its stdout and stderr
    tail: bytearray = field(default_factory=bytearray)
    status: Optional[int] = None


class Server:
    """The loop: requests in, children forked, replies out (single-threaded, so forks are safe)."""

    def __init__(self, requests: int, replies: int):
        self.requests = requests
        self.replies = replies
        self.children: Dict[int, _Child] = {}  # pid -> child
        self.by_id: Dict[int, _Child] = {}
        self.selector = selectors.DefaultSelector()
        self.buffer = b""
        self.closing = False
        self.prctl = _load_prctl()
        self.pid = os.getpid()
        self.wake_r, wake_w = os.pipe()
        for fd in (self.wake_r, wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the loop
        self.selector.register(self.requests, selectors.EVENT_READ, "requests")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")

    def serve(self) -> None:
        while not (self.closing and not self.children):
            for key, _ in self.selector.select(timeout=1.0):
                what = key.data
                if what == "requests":
                    self._read_requests()
                elif what == "wake":
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._read_output(what)
            self._reap()

    # -- requests -----------------------------------------------------------------------------

    def _read_requests(self) -> None:
        try:
            chunk = os.read(self.requests, 65536)
        except OSError:
            chunk = b""
        if not chunk:  # the worker is gone: stop every child, exit once they have ended
            self.selector.unregister(self.requests)
            self.closing = True
            for child in list(self.children.values()):
                self._signal(child, signal.SIGTERM)
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            request = json.loads(line)
            if request["op"] == "start":
                self._start(int(request["id"]), [str(a) for a in request["argv"]])
            elif request["op"] == "signal":
                child = self.by_id.get(int(request["id"]))
                if child is not None:
                    self._signal(child, int(request["signal"]))

    def _signal(self, child: _Child, signum: int) -> None:
        if child.status is None:  # not reaped yet, so the pid is still our child's
            try:
                os.kill(child.pid, signum)
            except ProcessLookupError:
                pass

    def _start(self, ident: int, argv) -> None:
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; measured by the tests through its effects
            code = 1
            try:
                code = self._child(argv, writer)
            finally:
                os._exit(code)
        os.close(writer)
        os.set_blocking(reader, False)
        child = self.children[pid] = self.by_id[ident] = _Child(ident, pid, reader)
        self.selector.register(reader, selectors.EVENT_READ, child)
        self._reply({"id": ident, "pid": pid})
        if self.closing:
            self._signal(child, signal.SIGTERM)

    def _child(self, argv, writer: int) -> int:  # pragma: no cover - runs in the child
        gc.disable()  # a short life: nothing to gain, pages to copy
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.prctl is not None:
            self.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != self.pid:  # the server died before the signal was armed
            return EXIT_INTERRUPTED
        os.dup2(writer, 1)
        os.dup2(writer, 2)
        os.closerange(3, 1 << 16)
        from runner.cli.exec_task import main

        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        return code

    # -- children -------------------------------------------------------------------------------

    def _read_output(self, child: _Child, final: bool = False) -> None:
        while child.output is not None:
            try:
                chunk = os.read(child.output, 65536)
            except BlockingIOError:
                if not final:
                    return
                chunk = b""
            if chunk:
                child.tail += chunk
                del child.tail[:-OUTPUT_TAIL]
                continue
            self.selector.unregister(child.output)
            os.close(child.output)
            child.output = None

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            child.status = os.waitstatus_to_exitcode(status)
            self._read_output(child, final=True)
            self.by_id.pop(child.ident, None)
            self._reply({"id": child.ident, "exit": child.status,
                         "output": child.tail.decode("utf-8", "replace")})

    def _reply(self, message) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.replies, data):]
        except OSError:  # the worker is gone; the children are being stopped
            pass


def preload() -> None:
    """What `run exec-task` imports, once, before any fork, and the caches its first call fills
    (argparse's patterns and messages), so that no child fills them again."""
    import runner.cli.console  # noqa: F401
    import runner.cli.exec_task
    import runner.execution.executor  # noqa: F401
    import runner.store  # noqa: F401
    import runner.store.base  # noqa: F401
    import runner.store.runfile  # noqa: F401
    import runner.store.sweep  # noqa: F401

    runner.cli.exec_task.make_parser().parse_args(["table.json", "0", "--grace", "1", "--slot",
                                                   "0", "--record", "key=value"])


def main() -> None:
    requests, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # stray output goes to the worker's stderr, never into the replies
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides when its tasks stop
    preload()
    gc.freeze()  # what is loaded now stays out of the children's garbage collections, so
    # that they do not copy every page of it (copy-on-write) just to mark it
    Server(requests, replies).serve()


if __name__ == "__main__":
    main()
