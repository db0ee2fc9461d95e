"""What runs inside a dask worker process: the task function and the calls that stop tasks.

`run_task` is what the dask engine submits for each task. On the worker it checks that the
output directory is there, then has the worker's exec server (`runner.cli.exec_server`, one
per worker process, started on first use) fork `run exec-task TABLE INDEX --slot N --record
dask_worker=<name> --record dask_host=<host> --record dask_submission=<id>`: the core's
single-task executor in a process of its own, with the worker's `CUDA_VISIBLE_DEVICES`. It tells
the submitting `run` when the task starts (a dask event on the submission's topic) and returns
the exit status and the end of what exec-task printed; the task's files say the rest.

`stop_submission` (called through `client.run` on every worker) stops the tasks of a submission
that run there, as Ctrl-C stops a local run, and keeps later ones of it from starting;
`running_tasks` says which still run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional, Set, Tuple

from runner.backends.dask.needs import SLOT_VARIABLE
from runner.gpu.binding import CUDA_VISIBLE_DEVICES
from runner.identity import HOST

EXEC_SERVER = "runner.cli.exec_server"
TOPIC_PREFIX = "runner-"


def topic_of(token: str) -> str:
    """The dask event topic on which a submission's workers say that a task started."""
    return TOPIC_PREFIX + token


def key_of(token: str, index: int) -> str:
    """The dask key of a submission's task `index` (unique per scheduler)."""
    return f"{TOPIC_PREFIX}{token}-{index}"


class _Run:
    """One exec-task process of the exec server, from start to exit status."""

    def __init__(self, ident: int, task: str):
        self.id = ident
        self.task = task
        self.pid: Optional[int] = None
        self.started = threading.Event()
        self.ended = threading.Event()
        self.exit: Optional[int] = None
        self.output = ""

    def end(self, exit_status: Optional[int], output: str) -> None:
        self.exit, self.output = exit_status, output
        self.started.set()
        self.ended.set()


class ExecServer:
    """The worker process's exec server: started on first use, and again if it died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None
        self._runs: Dict[int, _Run] = {}
        self._next = 0

    def start(self, argv: List[str], task: str) -> _Run:
        with self._lock:
            proc = self._ensure()
            self._next += 1
            run = self._runs[self._next] = _Run(self._next, task)
            self._send(proc, {"op": "start", "id": run.id, "argv": argv})
        return run

    def signal(self, run: _Run, signum: int) -> None:
        with self._lock:
            if run.id in self._runs and self._proc is not None:
                self._send(self._proc, {"op": "signal", "id": run.id, "signal": int(signum)})

    def _ensure(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            # A session of its own: a Ctrl-C at the terminal of `run worker` stops the worker,
            # and the worker's end stops the tasks (so that dask hands them to another worker).
            self._proc = subprocess.Popen([sys.executable, "-m", EXEC_SERVER],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          close_fds=True, start_new_session=True)
            reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True,
                                      name="runner exec server replies")
            reader.start()
        return self._proc

    def _send(self, proc: subprocess.Popen, message: Dict[str, Any]) -> None:
        try:
            proc.stdin.write((json.dumps(message) + "\n").encode())
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # it died: `_read` ends every run it had

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            reply = json.loads(line)
            with self._lock:
                run = self._runs.get(reply["id"])
                if run is not None and "exit" in reply:
                    del self._runs[run.id]
            if run is None:
                continue
            if "pid" in reply:
                run.pid = reply["pid"]
                run.started.set()
            else:
                run.end(reply["exit"], reply.get("output", ""))
        proc.wait()
        with self._lock:
            lost = [r for r in self._runs.values()]
            self._runs.clear()
        for run in lost:
            run.end(None, f"the worker's exec server ended (exit status {proc.returncode}) "
                          f"before the task did")


_SERVER = ExecServer()
_LOCK = threading.Lock()
_RUNNING: Dict[str, Dict[str, _Run]] = {}  # submission token -> dask key -> its run
_STOPPED: Set[str] = set()  # submissions stopped here: their tasks no longer start


def run_task(table: str, index: int, task: str, *, token: str, submission: str,
             grace: float) -> Dict[str, Any]:
    """Run task `index` of `table` on this worker (see the module's docstring)."""
    from distributed import get_worker

    worker = get_worker()
    name = str(worker.name)
    slot = os.environ.get(SLOT_VARIABLE, "0")
    outcome: Dict[str, Any] = {"name": name, "host": HOST, "slot": int(slot),
                               "gpus": os.environ.get(CUDA_VISIBLE_DEVICES, "")}
    problem = check_visible(table, name)
    if problem:
        return {**outcome, "refused": problem}
    argv = [table, str(index), "--grace", f"{grace:g}", "--slot", slot,
            "--record", f"dask_worker={name}", "--record", f"dask_host={HOST}",
            "--record", f"dask_submission={submission}"]
    key = str(worker.get_current_task())
    with _LOCK:
        if token in _STOPPED:
            return {**outcome, "cancelled": True}
        run = _SERVER.start(argv, task)
        _RUNNING.setdefault(token, {})[key] = run
    try:
        run.started.wait()
        if run.pid is not None:
            # (the scheduler sets "worker" of a worker's event to the worker's address)
            worker.log_event(topic_of(token), {"key": key, "name": name,
                                               "slot": outcome["slot"], "gpus": outcome["gpus"]})
        run.ended.wait()
    finally:
        with _LOCK:
            runs = _RUNNING.get(token, {})
            runs.pop(key, None)
            if not runs:
                _RUNNING.pop(token, None)
    return {**outcome, "exit": run.exit, "output": run.output}


def check_visible(table: str, worker: str) -> str:
    """'' when this machine sees the task table (it lies in the output directory), else the
    line that fails the task."""
    if os.path.isfile(table):
        return ""
    output = os.path.dirname(os.path.dirname(os.path.dirname(table)))
    return (f"worker {worker} on {HOST} cannot see the output directory {output} (its task "
            f"table {table} is not there): the output directory must be on a filesystem every "
            f"worker mounts")


def stop_submission(token: str) -> List[str]:
    """Stop the tasks of a submission that run in this worker process (their exec-task stops
    its command as on Ctrl-C; a second call kills it at once) and start none of it from now."""
    with _LOCK:
        _STOPPED.add(token)
        runs = list(_RUNNING.get(token, {}).values())
    for run in runs:
        _SERVER.signal(run, signal.SIGTERM)
    return [run.task for run in runs]


def running_tasks(token: str) -> List[Tuple[str, Optional[int]]]:
    """(task, exec-task pid) of each task of a submission that still runs here."""
    with _LOCK:
        return [(run.task, run.pid) for run in _RUNNING.get(token, {}).values()]


def dask_setup(worker) -> None:
    """dask's preload hook, run by each worker of `run worker` as it starts: Ctrl-C or a hangup
    at the terminal is for `run worker`, which closes its workers in order (a worker killed by
    it would be started again by its nanny)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
