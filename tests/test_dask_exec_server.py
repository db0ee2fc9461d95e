"""The exec server of a dask worker (`python -m runner.cli.exec_server`), spoken to as a worker
does: each task a forked `run exec-task` with the files of a local run, stopped on request, and
no command outliving the worker (the end of stdin) or the server itself (kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dask_support import gone, is_running, parent_of
from support import read_json, wait_for

HELD = """
template:
  work: echo $$ > pid_{i}; sleep 60
---
i: [1, 2]
"""


class Server:
    def __init__(self, cwd: Path):
        self.proc = subprocess.Popen([sys.executable, "-m", "runner.cli.exec_server"], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def send(self, **request) -> None:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def reply(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, "the server ended"
        return json.loads(line)

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except BrokenPipeError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def table(make_config, workdir):
    """A task table of two tasks that run until they are stopped, as engines write them."""
    make_config(HELD)
    from runner.spec.config import load_config
    from runner.spec.expand import Selection, expand
    from runner.store.base import make_task_table
    from runner.store.files import write_json
    from runner.store.sweep import SweepStore

    plan = expand(load_config("params.yaml"), Selection(), "out", "2026-01-01.00_00_00")
    store = SweepStore("out")
    path = workdir / "tasks.json"
    write_json(str(path), make_task_table(store, plan.tasks, {"datetime": "2026-01-01.00_00_00"}))
    return str(path)


@pytest.fixture
def server(workdir):
    started = Server(workdir)
    yield started
    started.close()


def start(server, table, ident, index):
    server.send(op="start", id=ident, argv=[table, str(index), "--grace", "2",
                                            "--record", "dask_worker=w"])
    reply = server.reply()
    assert reply["id"] == ident and reply["pid"] > 0
    return reply["pid"]


def test_a_task_runs_as_a_forked_exec_task_and_stops_on_request(server, table, workdir):
    child = start(server, table, 1, 0)
    assert parent_of(child) == server.proc.pid
    wait_for(lambda: (workdir / "pid_1").exists(), 30, "the command to start")
    command = int((workdir / "pid_1").read_text())
    assert parent_of(command) == child
    entry = read_json(workdir / "out/I_1/stat.json")["work"]
    assert entry["status"] == "running" and entry["dask_worker"] == "w"
    assert entry["runner_pid"] == child
    server.send(op="signal", id=1, signal=int(signal.SIGTERM))
    reply = server.reply()
    assert reply["id"] == 1 and reply["exit"] == 130, reply
    assert "INTERRUPTED I_1 work" in reply["output"]
    assert not is_running(command)
    assert read_json(workdir / "out/I_1/stat.json")["work"]["status"] == "interrupted"


def test_the_end_of_stdin_stops_every_task_and_the_server(server, table, workdir):
    start(server, table, 1, 0)
    start(server, table, 2, 1)
    wait_for(lambda: (workdir / "pid_1").exists() and (workdir / "pid_2").exists(), 30,
             "both commands to start")
    commands = [int((workdir / f"pid_{i}").read_text()) for i in (1, 2)]
    server.proc.stdin.close()  # the worker is gone
    replies = {r["id"]: r["exit"] for r in (server.reply(), server.reply())}
    assert replies == {1: 130, 2: 130}
    assert server.proc.wait(30) == 0
    assert not any(is_running(p) for p in commands)
    assert [read_json(workdir / f"out/I_{i}/stat.json")["work"]["status"]
            for i in (1, 2)] == ["interrupted", "interrupted"]


def test_no_command_outlives_a_killed_server(server, table, workdir):
    child = start(server, table, 1, 0)
    wait_for(lambda: (workdir / "pid_1").exists(), 30, "the command to start")
    command = int((workdir / "pid_1").read_text())
    os.kill(server.proc.pid, signal.SIGKILL)
    assert gone([command, child], 30)  # the child got SIGTERM when its parent died
    wait_for(lambda: read_json(workdir / "out/I_1/stat.json")["work"]["status"] ==
             "interrupted", 30, "the task to be recorded interrupted")
