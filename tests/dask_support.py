"""A real dask cluster on 127.0.0.1 for the tests: `dask scheduler` on a port the OS picks, and
`run worker` processes, each with the slots it is given (imported as `dask_support`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import pytest

from support import wait_for

STARTED = "; Ctrl-C stops them"  # the end of the line `run worker` prints once they are up


def require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        pytest.skip("dask.distributed is not installed (pip install '.[dask]')")


class Worker:
    """One `run worker` process, its output collected as it comes."""

    def __init__(self, scheduler: str, slots: List[str], cwd: Path, *extra: str,
                 env: Optional[dict] = None, prefix: Optional[List[str]] = None):
        argv = ["worker", "--scheduler", scheduler, "-r", *slots, "--grace", "2", *extra]
        self.proc = subprocess.Popen(  # `prefix`: inside another program, such as unshare
            [*(prefix or []), sys.executable, "-m", "runner", *argv], cwd=cwd,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_started(self, timeout: float = 60) -> None:
        wait_for(lambda: STARTED in self.output or self.proc.poll() is not None, timeout,
                 "run worker to start its workers")
        assert STARTED in self.output, self.output

    def names(self) -> List[str]:
        """The worker names it printed (`worker <name> (...) at ...`)."""
        return [line.split()[1] for line in self.lines if line.startswith("worker ")]

    def pids(self) -> List[int]:
        """The pids of its worker processes, as it printed them."""
        return [int(line.rsplit("(pid ", 1)[1].rstrip(")")) for line in self.lines
                if line.startswith("worker ") and "(pid " in line]

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        self.proc.stdout.close()
        return code


class Cluster:
    """A scheduler and `run worker`s; `address` is the scheduler's."""

    def __init__(self, directory: Path, slots: List[List[str]], env: Optional[dict] = None):
        require_distributed()
        self.directory = directory
        self.env = env
        info = directory / "scheduler.json"
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--dashboard-address", ":0", "--scheduler-file", str(info)],
            cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers: List[Worker] = []
        try:
            address = wait_for(lambda: _address(info), 60, "the dask scheduler's address")
            self.address: str = address
            self.workers = [Worker(address, s, directory, env=env) for s in slots]
            for worker in self.workers:
                worker.wait_started()
        except BaseException:
            self.stop()
            raise

    def add_worker(self, slots: List[str], *extra: str, env: Optional[dict] = None,
                   **kwargs) -> Worker:
        """Another `run worker` (with the cluster's environment, and `env` on top)."""
        return Worker(self.address, slots, self.directory, *extra,
                      env={**(self.env or {}), **(env or {})}, **kwargs)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.scheduler.poll() is None:
            self.scheduler.send_signal(signal.SIGTERM)
            try:
                self.scheduler.wait(30)
            except subprocess.TimeoutExpired:
                self.scheduler.kill()
                self.scheduler.wait()


def _address(path: Path) -> Optional[str]:
    try:
        return json.loads(path.read_text()).get("address")
    except (FileNotFoundError, ValueError):
        return None


def parent_of(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def is_running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def gone(pids, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(is_running(p) for p in pids):
            return True
        time.sleep(0.05)
    return False
