"""What a run prints: one line per command start and end, a live progress line, the summary."""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Dict, List, Optional

from runner.cli.common import format_duration, tail_lines
from runner.execution.executor import Events
from runner.task import CommandResult, Slot, Status, Task, TaskResult

LOG_TAIL = 5
WAIT_EVERY = 10.0  # seconds between "wait" lines when stdout is not a terminal


class Console(Events):
    """Prints executor events; keeps a progress line at the bottom when stdout is a terminal."""

    def __init__(self, total: int, stream: Optional[IO[str]] = None, quiet_starts: bool = False):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.total = total
        self.done = 0
        self.failed = 0
        self.running = 0
        self.started_at = time.monotonic()
        self.waiting: Optional[str] = None
        self.quiet_starts = quiet_starts
        self._said_wait: tuple = (None, 0.0)  # the last waiting reason printed, and when
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            if self.live:
                self.stream.write("\r\033[K" + line + "\n" + self._progress())
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _progress(self) -> str:
        elapsed = time.monotonic() - self.started_at
        finished = self.done + self.failed
        left = max(self.total - finished - self.running, 0)
        eta = ""
        if finished and (left or self.running):
            eta = f" | ETA {format_duration(elapsed / finished * (left + self.running / 2))}"
        wait = f" | waiting: {self.waiting}" if self.waiting else ""
        return (f"done {self.done} | failed {self.failed} | running {self.running} | left {left} "
                f"| {format_duration(elapsed)} elapsed{eta}{wait}")

    def tick(self) -> None:
        if self.live:
            with self._lock:
                self.stream.write("\r\033[K" + self._progress())
                self.stream.flush()

    def clear(self) -> None:
        if self.live:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def command_started(self, task: Task, slot: Slot, command: str, log: str) -> None:
        with self._lock:
            self.running += 1
        if not self.quiet_starts:
            self._write(f"{_clock()} start  {task.name} {command} on {slot}  log: {log}")

    def command_ended(self, task: Task, slot: Slot, result: CommandResult) -> None:
        if result.status is Status.DONE:
            tries = f", attempt {result.attempts}" if result.attempts > 1 else ""
            line = (f"{_clock()} done   {task.name} {result.command} on {slot} "
                    f"({result.duration:.1f} s{tries})  log: {result.log}")
        else:
            line = (f"{_clock()} {result.status.value.upper():<6} {task.name} {result.command} "
                    f"{_how(result)} on {slot}  log: {result.log}")
        with self._lock:
            self.running -= 1
        self._write(line)

    def command_retrying(self, task: Task, slot: Slot, result: CommandResult, reason: str,
                         attempt: int, attempts: int, delay: float) -> None:
        with self._lock:
            self.running -= 1
        later = f" in {delay:g} s" if delay else ""
        self._write(f"{_clock()} retry  {task.name} {result.command} {_how(result, False)} on "
                    f"{slot}: {reason}; attempt {attempt} of {attempts}{later}  log: {result.log}")

    def waiting_for(self, reason: Optional[str]) -> None:
        """Why the next task cannot start yet (None: it could). On a terminal the progress line
        shows it; otherwise a line is printed when a wait begins for a new reason (at most one
        per WAIT_EVERY seconds after the first)."""
        now = time.monotonic()
        with self._lock:
            begins = reason is not None and self.waiting is None
            self.waiting = reason
            say = begins and reason != self._said_wait[0] and (
                self._said_wait[0] is None or now - self._said_wait[1] >= WAIT_EVERY)
            if say:
                self._said_wait = (reason, now)
        if self.live:
            self.tick()
        elif say:
            self._write(f"{_clock()} wait   {reason}")

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            if result.status in (Status.FAILED, Status.TIMEOUT):
                self.failed += 1
            elif result.status in (Status.DONE, Status.SKIPPED):
                self.done += 1

    def notice(self, message: str) -> None:
        self._write(f"{_clock()} note   {message}")


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _how(result: CommandResult, attempts: bool = True) -> str:
    tries = f" after {result.attempts} attempts" if attempts and result.attempts > 1 else ""
    if result.status is Status.TIMEOUT:
        return f"(timed out after {result.duration:.1f} s{tries})"
    if result.signal:
        return f"(killed by signal {result.signal}{tries})"
    if result.exit_status is not None:
        return f"(exit status {result.exit_status}{tries})"
    return ""


def write_summary(stream: IO[str], results: List[TaskResult], skipped: int, not_started: int,
                  elapsed: float) -> None:
    """Counts, then every failed task with its command, exit status and the end of its log."""
    counts: Dict[Status, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    skipped += counts.get(Status.SKIPPED, 0)
    parts = [f"{counts.get(Status.DONE, 0)} done", f"{counts.get(Status.FAILED, 0)} failed"]
    if counts.get(Status.TIMEOUT):
        parts.append(f"{counts[Status.TIMEOUT]} timed out")
    parts.append(f"{skipped} skipped (done earlier)")
    interrupted = counts.get(Status.INTERRUPTED, 0) + counts.get(Status.LOCKED, 0)
    if interrupted:
        parts.append(f"{interrupted} interrupted")
    if not_started:
        parts.append(f"{not_started} not started")
    stream.write(f"summary: {', '.join(parts)} in {format_duration(elapsed)}\n")
    failed = [r for r in results if r.failed is not None]
    if failed:
        stream.write("failed:\n")
    for result in failed:
        command = result.failed
        stream.write(f"  {result.task.name} {command.command}: {_how(command)} on {result.slot}; "
                     f"log {command.log}\n")
        for line in tail_lines(command.log, LOG_TAIL):
            stream.write(f"      | {line}\n")
        err_lines = tail_lines(command.err_log, LOG_TAIL)
        if err_lines:
            stream.write(f"    stderr ({command.err_log}):\n")
        for line in err_lines:
            stream.write(f"      | {line}\n")
    stream.flush()
