"""What a run prints: a line per finished command, a live progress line, and the summary.

Three levels: `-q` prints only the header, failures and the summary; the default adds one line
per finished command (with its log path when it failed); `-v` adds a line when a command starts
and the log path of every command. On a terminal a progress line stays at the bottom, counted in
the header's unit (tasks), and lines are coloured (off for pipes and with `NO_COLOR`). Output
that cannot be written (`run ... | head`) is dropped: the run goes on.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Callable, Dict, Iterable, List, Optional

from runner.cli.common import format_duration
from runner.execution.executor import Events
from runner.store.files import read_tail
from runner.task import CommandResult, Slot, Status, Task, TaskResult

LOG_TAIL = 5
WAIT_EVERY = 10.0  # seconds between "wait" lines when stdout is not a terminal
QUIET, NORMAL, VERBOSE = 0, 1, 2
_COLORS = {"green": "32", "red": "31", "yellow": "33", "dim": "2"}
_STATUS_COLOR = {Status.DONE: "green", Status.FAILED: "red", Status.TIMEOUT: "red",
                 Status.INTERRUPTED: "yellow", Status.LOCKED: "yellow"}


def use_color(stream: IO[str]) -> bool:
    return stream_isatty(stream) and not os.environ.get("NO_COLOR")


def stream_isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Console(Events):
    """Prints executor events; keeps a progress line at the bottom when stdout is a terminal."""

    tick_every = 1.0  # seconds between progress-line updates (engines call `tick`)

    def __init__(self, total: int, stream: Optional[IO[str]] = None, verbosity: int = NORMAL,
                 commands: int = 0, noun: str = "task"):
        self.stream = stream or sys.stdout
        self.live = stream_isatty(self.stream)
        self.color = use_color(self.stream)
        self.verbosity = verbosity
        self.total = total
        self.total_commands = commands
        self.noun = noun
        self.done = 0
        self.failed = 0
        self.finished_commands = 0
        self.running: Dict[str, int] = {}  # task -> commands of it running now
        self.started_at = time.monotonic()
        self.waiting: Optional[str] = None
        self._said_wait: tuple = (None, 0.0)  # the last waiting reason printed, and when
        self._lock = threading.Lock()
        self._broken = False
        self.before_write: Optional[Callable[[], None]] = None  # -d: end the command's line
        if not self.live:
            self.tick_every = None

    # -- writing --------------------------------------------------------------------------------

    def paint(self, text: str, color: str) -> str:
        return f"\033[{_COLORS[color]}m{text}\033[0m" if self.color else text

    def _emit(self, text: str) -> None:
        """Write and flush; once the reader is gone (a closed pipe), say nothing more."""
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._broken = True
            try:  # stdout's buffer may still hold text Python would try to flush at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass

    def write(self, text: str) -> None:
        """`text` (whole lines) above the progress line."""
        if self.before_write is not None:
            self.before_write()
        with self._lock:
            self._emit(("\r\033[K" + text + self._progress()) if self.live else text)

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.line(line)

    def _progress(self) -> str:
        elapsed = time.monotonic() - self.started_at
        running = len(self.running)
        left = max(self.total - self.done - self.failed - running, 0)
        eta = ""
        if self.finished_commands and (left or running) and self.total_commands:
            remaining = max(self.total_commands - self.finished_commands, 0)
            eta = f" | ETA {format_duration(elapsed / self.finished_commands * remaining)}"
        wait = f" | {self.paint('waiting: ' + self.waiting, 'yellow')}" if self.waiting else ""
        return (f"done {self.done} | failed {self.failed} | running {running} | left {left} "
                f"| {format_duration(elapsed)} elapsed{eta}{wait}")

    def tick(self) -> None:
        if self.live:
            with self._lock:
                self._emit("\r\033[K" + self._progress())

    def clear(self) -> None:
        if self.live:
            with self._lock:
                self._emit("\r\033[K")

    # -- executor events ------------------------------------------------------------------------

    def command_started(self, task: Task, slot: Slot, command: str, log: str) -> None:
        with self._lock:
            self.running[task.name] = self.running.get(task.name, 0) + 1
        if self.verbosity >= VERBOSE:
            self.line(f"{_clock()} start  {task.name} {command} on {slot}  log: {log}")

    def command_ended(self, task: Task, slot: Slot, result: CommandResult) -> None:
        with self._lock:
            self.finished_commands += 1
            # between two commands a task still counts as running, until it finishes
            self.running[task.name] = max(self.running.get(task.name, 1) - 1, 0)
        ok = result.status is Status.DONE
        if ok and self.verbosity < NORMAL:
            self.tick()
            return
        word = self.paint(f"{'done' if ok else result.status.value.upper():<6}",
                          _STATUS_COLOR.get(result.status, "red"))
        if ok:
            tries = f", attempt {result.attempts}" if result.attempts > 1 else ""
            text = (f"{_clock()} {word} {task.name} {result.command} "
                    f"({result.duration:.1f} s{tries})")
            if self.verbosity >= VERBOSE:
                text += f" on {slot}  log: {result.log}"
        else:
            text = (f"{_clock()} {word} {task.name} {result.command} {describe_end(result)} "
                    f"on {slot}  log: {result.log}")
        self.line(text)

    def command_retrying(self, task: Task, slot: Slot, result: CommandResult, reason: str,
                         attempt: int, attempts: int, delay: float) -> None:
        with self._lock:
            self.running[task.name] = max(self.running.get(task.name, 1) - 1, 0)
        later = f" in {delay:g} s" if delay else ""
        self.line(f"{_clock()} {self.paint('retry ', 'yellow')} {task.name} {result.command} "
                  f"{describe_end(result, False)} on {slot}: {reason}; attempt {attempt} of "
                  f"{attempts}{later}  log: {result.log}")

    def task_refused(self, task: Task, slot: Slot, reason: str) -> None:
        self.line(f"{_clock()} {self.paint('error ', 'red')} {task.name}: {reason}")

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
            self.line(f"{_clock()} {self.paint('wait  ', 'yellow')} {reason}")

    def task_finished(self, result: TaskResult) -> None:
        with self._lock:
            self.running.pop(result.task.name, None)
            if result.is_failure:
                self.failed += 1
            elif result.status in (Status.DONE, Status.SKIPPED):
                self.done += 1
        self.tick()

    def notice(self, message: str) -> None:
        self.line(f"{_clock()} note   {message}")

    def message(self, text: str) -> None:
        self.line(text)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def describe_end(result: CommandResult, attempts: bool = True) -> str:
    """How a command that did not succeed ended, in words."""
    tries = f" after {result.attempts} attempts" if attempts and result.attempts > 1 else ""
    if result.status is Status.TIMEOUT:
        text = f"(timed out after {_seconds(result.timeout or result.duration)}"
        if result.killed_after is not None:
            text += f"; killed {_seconds(result.killed_after)} later"
        return text + f"{tries})"
    if result.signal:
        return f"(killed by signal {result.signal}{tries})"
    if result.exit_status is not None:
        return f"(exit status {result.exit_status}{tries})"
    return ""


def _seconds(value: float) -> str:
    return f"{value:g} s" if value == int(value) or value >= 10 else f"{value:.1f} s"


def write_summary(console: Console, results: List[TaskResult], skipped: int, not_started: int,
                  elapsed: float, output: Optional[str] = None, noun: str = "task") -> None:
    """Counts, every failed task with its command, exit status and the end of its log, and
    where to look next."""
    counts: Dict[Status, int] = {}
    for result in results:
        status = Status.FAILED if result.error else result.status
        counts[status] = counts.get(status, 0) + 1
    skipped += counts.get(Status.SKIPPED, 0)
    paint = console.paint
    parts = [paint(f"{counts.get(Status.DONE, 0)} done", "green"),
             paint(f"{counts.get(Status.FAILED, 0)} failed", "red")
             if counts.get(Status.FAILED) else "0 failed"]
    if counts.get(Status.TIMEOUT):
        parts.append(paint(f"{counts[Status.TIMEOUT]} timed out", "red"))
    parts.append(f"{skipped} skipped (done earlier)")
    interrupted = sum(counts.get(s, 0) for s in (Status.INTERRUPTED, Status.LOCKED,
                                                 Status.PENDING, Status.UNREADABLE))
    if interrupted:
        parts.append(paint(f"{interrupted} interrupted", "yellow"))
    if not_started:
        parts.append(f"{not_started} not started")
    out = [f"summary: {', '.join(parts)} in {format_duration(elapsed)}"]
    failed = [r for r in results if r.is_failure]
    if failed:
        out.append("failed:")
    for result in failed:
        if result.error:
            out.append(f"  {result.task.name}: {result.error}")
            continue
        command = result.failed
        where = f" on {result.slot}" if result.slot is not None else ""
        out.append(f"  {result.task.name} {command.command}: {describe_end(command)}{where}; "
                   f"log {command.log}")
        out.extend(f"      | {line}" for line in read_tail(command.log, LOG_TAIL))
        err_lines = read_tail(command.err_log, LOG_TAIL)
        if err_lines:
            out.append(f"    stderr ({command.err_log}):")
        out.extend(f"      | {line}" for line in err_lines)
    if output is not None:
        out.append(f"output: {output}  (more: run status -o {output}; run results -o {output}; "
                   f"run report -o {output})")
    console.lines(out)
