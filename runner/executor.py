"""The single-task executor: one task's commands on one slot, with every file it writes.

This is the unit that local workers call and that `run exec-task` runs on a cluster node, so a
task leaves the same `param.json`, `stat.json` and logs wherever it ran. It holds the task's lock
for the whole turn, decides under that lock what still has to run, and records each command's
state before it starts and after it ends.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from runner.process import (CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES, PCI_BUS_ID, ProcessGroups,
                            gpu_environment, is_alive, start_time, stop_group)
from runner.store import HOST, Store, is_done
from runner.task import CommandResult, Slot, Status, Task, TaskResult

_COMPOUND = re.compile(r"[;&|<>()`\n]|\$\(")


class Events:
    """What the executor reports while it works. The CLI subclasses it to print."""

    def command_started(self, task: Task, slot: Slot, command: str, log: str) -> None:
        """A command of `task` has started on `slot`, writing to `log`."""

    def command_ended(self, task: Task, slot: Slot, result: CommandResult) -> None:
        """A command ended (done, failed, interrupted)."""

    def notice(self, message: str) -> None:
        """Something the user should know that is not a command's start or end."""


@dataclass
class ExecOptions:
    """How to run tasks: force re-runs, stream output (debug), extra fields for `stat.json`.

    `bind_gpus=False` leaves `CUDA_VISIBLE_DEVICES` as the runner's own environment has it
    (workers that are not GPU slots: `run launch --n_jobs N`).
    """

    force: bool = False
    echo: Optional[Callable[[bytes], None]] = None
    record: Dict[str, Any] = field(default_factory=dict)
    bind_gpus: bool = True


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


def shell_line(command: str, gpus: tuple, logs: Tuple[str, Optional[str]]) -> str:
    """The shell line equivalent to how the runner starts `command` (for `param.json`)."""
    env = f"{CUDA_VISIBLE_DEVICES}={shlex.quote(','.join(gpus))} {CUDA_DEVICE_ORDER}={PCI_BUS_ID}"
    body = f"sh -c {shlex.quote(command)}" if _COMPOUND.search(command) else command
    out, err = logs
    return f"{env} {body} > {shlex.quote(out)} " + (f"2> {shlex.quote(err)}" if err else "2>&1")


class TaskExecutor:
    """Runs tasks on slots, recording them in a `Store`; call it as `executor(task, slot)`."""

    def __init__(self, store: Store, datetime: str, groups: Optional[ProcessGroups] = None,
                 options: Optional[ExecOptions] = None, events: Optional[Events] = None):
        self.store = store
        self.datetime = datetime
        self.groups = groups or ProcessGroups()
        self.options = options or ExecOptions()
        self.events = events or Events()
        self._envs: Dict[tuple, Dict[str, str]] = {}
        self._runner_start = start_time(os.getpid())

    def _env(self, slot: Slot) -> Dict[str, str]:
        env = self._envs.get(slot.gpus)
        if env is None:
            env = self._envs[slot.gpus] = gpu_environment(
                os.environ, slot.gpus if self.options.bind_gpus else None)
        return env

    def __call__(self, task: Task, slot: Slot, final: bool = True) -> Optional[TaskResult]:
        """Run what the task still needs; None (not final) when another invocation holds it."""
        lock = self.store.lock(task)
        if not lock.try_acquire():
            if not final:
                return None
            while not lock.try_acquire(timeout=0.2):
                if self.groups.stopping.is_set():
                    return TaskResult(task, slot, status=Status.LOCKED)
        try:
            return self._run_locked(task, slot)
        finally:
            lock.release()

    def _run_locked(self, task: Task, slot: Slot) -> TaskResult:
        state = self.store.read_state(task)
        if self._clear_stale(task, state):
            self.store.write_state(task, state)
        force = self.options.force
        todo = [c for c in task.commands if force or not is_done(state.get(c))]
        if not todo:
            return TaskResult(task, slot, status=Status.SKIPPED)
        self.store.write_params(task, {
            name: shell_line(command, slot.gpus, self.store.log_paths(task, name, self.datetime))
            for name, command in task.commands.items()})
        result = TaskResult(task, slot)
        for name in todo:
            if self.groups.stopping.is_set():
                result.status = Status.INTERRUPTED
                break
            outcome = self._run_command(task, slot, name, state)
            if outcome is None:
                result.status = Status.INTERRUPTED
                break
            result.commands.append(outcome)
            if outcome.status is not Status.DONE:
                result.status = outcome.status
                break
        return result

    def _clear_stale(self, task: Task, state: Dict[str, Any]) -> bool:
        """Running entries left by an invocation that died; we hold the lock, so none is live."""
        changed = False
        for name, entry in state.items():
            if not isinstance(entry, dict) or entry.get("status") != Status.RUNNING.value:
                continue
            pid = entry.get("pid")
            if entry.get("host") == HOST and is_alive(pid, entry.get("pid_start")):
                self.events.notice(f"{task.name} {name}: stopping process group {pid}, left "
                                   f"running by an invocation that was killed")
                stop_group(pid, self.groups.grace)
            entry.update(code=1, status=Status.INTERRUPTED.value,
                         note="the invocation that ran it ended without recording a result")
            changed = True
        return changed

    def _run_command(self, task: Task, slot: Slot, name: str,
                     state: Dict[str, Any]) -> Optional[CommandResult]:
        log_path, err_path = self.store.log_paths(task, name, self.datetime)
        echo = self.options.echo
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(log_path, "ab"))
            err = files.enter_context(open(err_path, "ab")) if err_path else subprocess.STDOUT
            started = time.time()
            proc = self.groups.spawn(task.commands[name], self._env(slot),
                                     subprocess.PIPE if echo else log, err)
            if proc is None:
                return None
            entry = {"code": 1, "status": Status.RUNNING.value, "exit_status": None,
                     "signal": None, "start": now_iso(), "end": None, "duration": None,
                     "slot": slot.index, "host": HOST,
                     "gpus": slot.cuda_visible_devices if self.options.bind_gpus else None,
                     "pid": proc.pid, "pid_start": start_time(proc.pid),
                     "runner_pid": os.getpid(), "runner_start": self._runner_start,
                     "log": log_path, **self.options.record}
            if err_path:
                entry["err_log"] = err_path
            state[name] = entry
            self.store.write_state(task, state)
            self.events.command_started(task, slot, name, log_path)
            try:
                if echo:
                    _pump(proc, log, echo)
                code = proc.wait()
            finally:
                self.groups.finish(proc)
        duration = time.time() - started
        if code == 0:
            status = Status.DONE
        elif self.groups.stopping.is_set():
            status = Status.INTERRUPTED
        else:
            status = Status.FAILED
        entry.update(code=0 if status is Status.DONE else 1, status=status.value,
                     exit_status=code if code >= 0 else None,
                     signal=-code if code < 0 else None, end=now_iso(),
                     duration=round(duration, 3))
        self.store.write_state(task, state)
        result = CommandResult(command=name, status=status, exit_status=entry["exit_status"],
                               signal=entry["signal"], duration=duration, log=log_path,
                               err_log=err_path)
        self.events.command_ended(task, slot, result)
        return result


def _pump(proc: subprocess.Popen, log, echo: Callable[[bytes], None]) -> None:
    """Copy a command's output to its log and to `echo` as it comes."""
    fd = proc.stdout.fileno()
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        log.write(chunk)
        log.flush()
        echo(chunk)
    proc.stdout.close()


def summarize_results(results: List[TaskResult]) -> Dict[Status, int]:
    counts: Dict[Status, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts
