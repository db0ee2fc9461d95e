"""The single-task executor: one task's commands on one slot, with every file it writes.

This is the unit that local workers call and that `run exec-task` runs on a cluster node, so a
task leaves the same `param.json`, `stat.json` and logs wherever it ran. It holds the task's lock
for the whole turn, decides under that lock what still has to run, and records each command's
state before it starts and after it ends.

A task's `timeout` stops a command's whole process group (TERM, KILL after the grace period) and
records it as `timeout`; its `retries` run a failed command again when the failure is one the
policy names, each attempt recorded in the command's `stat.json` entry (`attempt`, `attempts`).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from runner.errors import DamagedFileError, UnsafePathError, WriteError
from runner.execution.process import Child, ProcessGroups, signal_group, stop_group
from runner.gpu.binding import CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES, PCI_BUS_ID, gpu_environment
from runner.identity import HOST, MARKER, invocation_mark, is_ours, start_time
from runner.store.base import TaskStore
from runner.store.files import open_append
from runner.store.state import is_done, params_digest
from runner.task import CommandResult, Slot, Status, Task, TaskResult

_COMPOUND = re.compile(r"[;&|<>()`\n]|\$\(")
# How a command that a stop signal ended reports it: killed by it, or a shell's 128 + signal
_STOP_CODES = frozenset(c for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
                        for c in (-s, 128 + s))
# How long a command ended by a stop signal waits for the runner's own stop before it counts as
# failed: a cluster's cancel, `kill -- -PGID` of a whole tree or a container stop signal every
# process, the command first as often as not
STOP_WINDOW = 1.0


class Events:
    """What the executor reports while it works. The CLI subclasses it to print."""

    def command_started(self, task: Task, slot: Slot, command: str, log: str) -> None:
        """A command of `task` has started on `slot`, writing to `log`."""

    def command_ended(self, task: Task, slot: Slot, result: CommandResult) -> None:
        """A command ended (done, failed, timeout, interrupted)."""

    def command_retrying(self, task: Task, slot: Slot, result: CommandResult, reason: str,
                         attempt: int, attempts: int, delay: float) -> None:
        """A command failed (`result`) and runs again as attempt `attempt` of `attempts`."""

    def task_refused(self, task: Task, slot: Slot, reason: str) -> None:
        """A task was not run: a file it would write is a link or a special file."""

    def notice(self, message: str) -> None:
        """Something the user should know that is not a command's start or end."""

    def message(self, text: str) -> None:
        """A line for the person at the terminal, shown as it is."""


@dataclass
class ExecOptions:
    """How to run tasks: force re-runs, stream output (debug), extra fields for `stat.json`,
    what to record about each GPU (GPU id as bound -> index, UUID, name, memory).

    `bind_gpus=False` leaves `CUDA_VISIBLE_DEVICES` as the runner's own environment has it
    (workers that are not GPU slots: `run launch --n_jobs N`).
    """

    force: bool = False
    rerun: Dict[str, Set[str]] = field(default_factory=dict)  # task -> done commands to rerun
    echo: Optional[Callable[[bytes], None]] = None
    record: Dict[str, Any] = field(default_factory=dict)
    devices: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    bind_gpus: bool = True


# Lines by which CUDA, PyTorch, TensorFlow and JAX say that GPU memory ran out (`on: [oom]`).
OOM_PATTERN = re.compile(
    r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED"
    r"|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY|OOM when allocating"
    r"|RESOURCE_EXHAUSTED: Out of memory")
LOG_SCAN = 4 * 2 ** 20  # bytes of an attempt's log searched by `oom` and `log` conditions


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

    def __init__(self, store: TaskStore, datetime: str, groups: Optional[ProcessGroups] = None,
                 options: Optional[ExecOptions] = None, events: Optional[Events] = None):
        self.store = store
        self.datetime = datetime
        self.groups = groups or ProcessGroups()
        self.options = options or ExecOptions()
        self.events = events or Events()
        self._envs: Dict[tuple, Dict[bytes, bytes]] = {}
        self._runner_start = start_time(os.getpid())
        self._mark = invocation_mark(os.getpid(), self._runner_start)

    def _env(self, slot: Slot) -> Dict[bytes, bytes]:
        """The slot's environment, encoded once (Popen would encode every variable per start)."""
        env = self._envs.get(slot.gpus)
        if env is None:
            env = self._envs[slot.gpus] = {
                os.fsencode(k): os.fsencode(v) for k, v in gpu_environment(
                    os.environ, slot.gpus if self.options.bind_gpus else None).items()}
            env[MARKER.encode()] = self._mark.encode()
        return env

    def __call__(self, task: Task, slot: Slot, final: bool = True) -> Optional[TaskResult]:
        """Run what the task still needs; None (not final) when another invocation holds it."""
        try:
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
        except UnsafePathError as e:  # this task's problem only: it does not run, others go on
            self.events.task_refused(task, slot, str(e))
            return TaskResult(task, slot, status=Status.FAILED, error=str(e))
        except OSError as e:  # the disk or the permissions failed us: the whole run stops
            raise WriteError(e.filename or self.store.root, e) from None

    def _run_locked(self, task: Task, slot: Slot) -> TaskResult:
        try:
            state = self.store.read_state(task)
        except DamagedFileError as e:
            self.events.notice(f"warning: {e}; {task.name} runs again")
            state = {}
        self.store.check(task)
        if self._clear_stale(task, state):
            self.store.write_state(task, state)
        force = self.options.force
        rerun = self.options.rerun.get(task.name, ())
        todo = [c for c in task.commands if force or c in rerun or not is_done(state.get(c))]
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
            if is_ours(entry):
                self.events.notice(f"{task.name} {name}: stopping process group {pid}, left "
                                   f"running by an invocation that was killed")
                stop_group(pid, self.groups.grace)
            elif entry.get("host") == HOST and entry.get("pid_start") is None and pid:
                self.events.notice(f"{task.name} {name}: not stopping process {pid}: its entry "
                                   f"has no start time, so it cannot be proven ours; the command "
                                   f"runs again")
            entry.update(code=1, status=Status.INTERRUPTED.value,
                         note="the invocation that ran it ended without recording a result")
            changed = True
        return changed

    def _run_command(self, task: Task, slot: Slot, name: str,
                     state: Dict[str, Any]) -> Optional[CommandResult]:
        """Run one command; again while it fails in a way its `retries` policy names."""
        policy = task.settings.get("retries")
        attempts = 1 + (policy["count"] if policy else 0)
        history: List[Dict[str, Any]] = []
        attempt, reason = 1, ""
        while True:
            outcome = self._attempt(task, slot, name, state, attempt, attempts, history, reason)
            if outcome is None:
                return None
            result, scan = outcome
            if result.status in (Status.DONE, Status.INTERRUPTED) or attempt >= attempts:
                break
            reason = retry_reason(policy["on"], result, scan)
            if not reason or self.groups.stopping.is_set():
                break
            history.append({**{k: state[name].get(k) for k in ATTEMPT_FIELDS},
                            "retried_because": reason})
            self.events.command_retrying(task, slot, result, reason, attempt + 1, attempts,
                                         policy["delay"])
            if policy["delay"] and self.groups.stopping.wait(policy["delay"]):
                break
            attempt += 1
        self.events.command_ended(task, slot, result)
        return result

    def _attempt(self, task: Task, slot: Slot, name: str, state: Dict[str, Any], attempt: int,
                 attempts: int, history: List[Dict[str, Any]], reason: str
                 ) -> Optional[Tuple[CommandResult, Callable[[], str]]]:
        """One run of a command: (its result, a reader of what it wrote to its logs)."""
        log_path, err_path = self.store.log_paths(task, name, self.datetime)
        echo = self.options.echo
        timeout = task.settings.get("timeout")
        log = open_append(log_path)
        try:
            err = open_append(err_path) if err_path else subprocess.STDOUT
        except BaseException:
            os.close(log)
            raise
        try:
            if attempt > 1:
                os.write(log, f"--- runner: attempt {attempt} of {attempts} ({reason}) ---\n"
                         .encode())
            offsets = [(log_path, os.lseek(log, 0, os.SEEK_END))] + (
                [(err_path, os.lseek(err, 0, os.SEEK_END))] if err_path else [])
            started = time.time()
            proc = self.groups.spawn(task.commands[name], self._env(slot),
                                     subprocess.PIPE if echo else log, err, tag=slot)
            if proc is None:
                return None
            entry = {"code": 1, "status": Status.RUNNING.value, "exit_status": None,
                     "signal": None, "start": now_iso(), "end": None, "duration": None,
                     "command": task.commands[name], "params": params_digest(task.params),
                     "datetime": self.datetime, "slot": slot.index, "host": HOST,
                     "gpus": slot.cuda_visible_devices if self.options.bind_gpus else None,
                     "pid": proc.pid, "pid_start": start_time(proc.pid),
                     "runner_pid": os.getpid(), "runner_start": self._runner_start,
                     "log": log_path, **self.options.record}
            if err_path:
                entry["err_log"] = err_path
            entry.update(self._gpu_fields(task, slot))
            if timeout is not None:
                entry["timeout"] = timeout
            if attempts > 1:
                entry.update(attempt=attempt, attempts=list(history))
            state[name] = entry
            try:
                self.store.write_state(task, state)
            except BaseException:  # unrecorded, it must not run on: stop it before reporting
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                self.groups.finish(proc)
                raise
            self.events.command_started(task, slot, name, log_path)
            timer = None
            killed: List[float] = []  # after a timeout: seconds from TERM to KILL, if needed
            if timeout is not None:
                ended, timed_out = threading.Event(), threading.Event()
                timer = threading.Timer(timeout, self._expire,
                                        (proc.pid, ended, timed_out, killed))
                timer.daemon = True
                timer.start()
            try:
                if echo:
                    _pump(proc, log, echo)
                code = proc.wait()
            finally:
                if timer is not None:
                    ended.set()
                    timer.cancel()
                self.groups.finish(proc)
        finally:
            os.close(log)
            if err_path:
                os.close(err)
        duration = time.time() - started
        timed_out_now = timer is not None and timed_out.is_set()
        if code in _STOP_CODES and not timed_out_now:
            self._await_stop(STOP_WINDOW)
        if code == 0:
            status = Status.DONE
        elif timed_out_now:
            status = Status.TIMEOUT
        elif self.groups.stopping.is_set():
            status = Status.INTERRUPTED
        else:
            status = Status.FAILED
        entry.update(code=0 if status is Status.DONE else 1, status=status.value,
                     exit_status=code if code >= 0 else None,
                     signal=-code if code < 0 else None, end=now_iso(),
                     duration=round(duration, 3))
        if timed_out_now and killed:
            entry["killed_after"] = round(killed[0], 3)
        self.store.write_state(task, state)
        result = CommandResult(command=name, status=status, exit_status=entry["exit_status"],
                               signal=entry["signal"], duration=duration, log=log_path,
                               attempts=attempt, err_log=err_path,
                               timeout=timeout if timed_out_now else None,
                               killed_after=killed[0] if timed_out_now and killed else None)
        return result, lambda: _read_since(offsets)

    def _await_stop(self, window: float) -> None:
        """Give a stop signal sent with the one that ended the command time to reach us.

        Short sleeps, not `Event.wait`: in `run exec-task` this is the main thread, which runs
        the signal handler that sets `stopping`.
        """
        deadline = time.monotonic() + window
        while not self.groups.stopping.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _expire(self, pgid: int, ended: threading.Event, timed_out: threading.Event,
                killed: List[float]) -> None:
        """The command ran past its timeout: TERM its group, KILL it after the grace period."""
        if ended.is_set():
            return
        timed_out.set()
        termed = time.monotonic()
        signal_group(pgid, signal.SIGTERM)
        if not ended.wait(self.groups.grace):
            killed.append(time.monotonic() - termed)
            signal_group(pgid, signal.SIGKILL)

    def _gpu_fields(self, task: Task, slot: Slot) -> Dict[str, Any]:
        """What `stat.json` records about the GPUs a command runs on, where known."""
        fields: Dict[str, Any] = {}
        devices = [self.options.devices[g] for g in slot.gpus if g in self.options.devices]
        if devices:
            fields["gpu_devices"] = devices
        if task.settings.get("gpu_memory") is not None and slot.gpus:
            fields["gpu_memory"] = task.settings["gpu_memory"]
        return fields


# Fields of an attempt kept in `attempts` when the command runs again.
ATTEMPT_FIELDS = ("attempt", "status", "exit_status", "signal", "start", "end", "duration", "gpus")


def retry_reason(conditions: List[str], result: CommandResult, scan: Callable[[], str]) -> str:
    """Which condition of `retries.on` this failed attempt meets ('' when none does)."""
    text: Optional[str] = None
    for condition in conditions:
        word, _, rest = condition.partition(" ")
        if word == "any":
            return "failed" if result.status is Status.FAILED else "timed out"
        if word == "timeout" and result.status is Status.TIMEOUT:
            return "timed out"
        if result.status is Status.TIMEOUT:
            continue
        if word == "exit" and result.exit_status == int(rest):
            return f"exit status {rest}"
        if word == "signal" and int(rest) in (result.signal, (result.exit_status or 0) - 128):
            return f"killed by signal {rest}"  # itself, or the shell says so with 128 + N
        if word in ("oom", "log"):
            text = scan() if text is None else text
            if word == "oom" and OOM_PATTERN.search(text):
                return "out of GPU memory"
            if word == "log" and re.search(rest, text, re.MULTILINE):
                return f"log matches {rest!r}"
    return ""


def _read_since(offsets: List[Tuple[str, int]]) -> str:
    """What was written to these files after these offsets (at most LOG_SCAN bytes of each)."""
    parts = []
    for path, offset in offsets:
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(offset, f.tell() - LOG_SCAN))
                parts.append(f.read().decode("utf-8", "replace"))
        except OSError:
            pass
    return "\n".join(parts)


def _pump(proc: Child, log: int, echo: Callable[[bytes], None]) -> None:
    """Copy a command's output to its log and to `echo` as it comes, until the command ended
    and nothing more comes: something it started in the background and that still holds its
    output (`sleep 100 &`) is stopped with its group, and one that left the group is not
    waited for."""
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    ended = False
    try:
        while True:
            if poller.poll(PUMP_POLL_MS):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                os.write(log, chunk)
                echo(chunk)
            elif ended:
                break  # nothing came after the command's group was stopped
            elif proc.poll() is not None:
                signal_group(proc.pid, signal.SIGKILL)  # what it left in its group
                ended = True
    finally:
        proc.stdout.close()


PUMP_POLL_MS = 100
