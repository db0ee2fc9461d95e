"""The local engine: the tasks run here, one worker thread per slot (or a GPU pool), each task
by the core's single-task executor.

Every invocation records itself in the task directory (`<root>/.runner/runs/<id>.json`: its
tasks, its pid and start time) and holds a lock on that record while it runs, so `run cancel`
from another terminal can find it, prove it is a live `run` of this host, and ask it to stop as
Ctrl-C would (SIGTERM: running commands are interrupted, the summary is printed, exit 130).
The local half of `run launch-script` (a profile with `host: local`) is here too.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from typing import Optional

from runner.backends.base import CancelReport, Engine, RunReport, RunRequest
from runner.errors import DamagedFileError, RunnerError, UnsafePathError
from runner.execution.executor import Events, TaskExecutor
from runner.execution.process import ProcessGroups
from runner.gpu.binding import gpu_environment
from runner.execution.scheduler import Scheduler
from runner.identity import describe_invocation, is_live_invocation
from runner.store.base import TaskStore
from runner.store.files import FileLock
from runner.task import CommandResult, Status, Task, TaskResult

INVOCATION = "invocation"  # the key of a run table that says which process runs it
CANCEL_POLL = 0.05


class LocalEngine(Engine):
    """Runs a request's tasks in this process's workers."""

    name = "local"

    def __init__(self) -> None:
        self.groups: Optional[ProcessGroups] = None

    def run(self, request: RunRequest, events: Events) -> RunReport:
        groups = self.groups = ProcessGroups(grace=request.grace)
        executor = TaskExecutor(request.store, request.datetime, groups, request.exec_options,
                                events)
        scheduler: Scheduler = Scheduler(request.slots, executor, groups,
                                         on_result=getattr(events, "task_finished", None),
                                         admission=request.admission,
                                         on_wait=getattr(events, "waiting_for", None))
        report = RunReport()
        lock = self._record(request)
        try:
            report.results = scheduler.run(request.tasks, tick=getattr(events, "tick_every", None),
                                           on_tick=getattr(events, "tick", None))
        except RunnerError as e:  # a full disk: everything was stopped; report what ended
            report.results, report.error = list(scheduler.results), e
        finally:
            groups.close()
            if lock is not None:
                lock.release()
        report.not_started = len(request.tasks) - len(report.results)
        return report

    def _record(self, request: RunRequest) -> Optional[FileLock]:
        """Write this invocation's run table and hold its lock while the run goes on."""
        if request.settings.get("record") is False:
            return None
        run_id = f"{request.datetime}.{os.getpid()}"
        path = request.store.write_run_table(
            run_id, request.tasks, {**request.info, "datetime": request.datetime,
                                    INVOCATION: describe_invocation()})
        lock = FileLock(path, directory=False)
        lock.try_acquire()
        return lock

    def stop(self, kill: bool = False) -> None:
        if self.groups is not None:
            self.groups.kill() if kill else self.groups.stop()

    def cancel(self, store: TaskStore, submission: Optional[str] = None,
               wait: float = 0.0) -> CancelReport:
        """Ask every live local invocation on this task directory to stop (as Ctrl-C would).
        Local runs have no submissions: with `submission` named, nothing is cancelled here."""
        report = CancelReport()
        if submission is not None:
            return report
        live = []
        for path, table in store.iter_run_tables():
            record = table.get(INVOCATION)
            if not isinstance(record, dict) or not _is_held(path):
                continue  # ended, or never was a local run
            if not is_live_invocation(record):
                continue  # another host's, or a pid that is not that run any more
            os.kill(record["pid"], signal.SIGTERM)
            live.append(record)
            report.tasks.extend(t["name"] for t in table["tasks"])
            report.lines.append(f"asked the run of pid {record['pid']} (started "
                                f"{table.get('datetime', '?')}) to stop, as Ctrl-C would")
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            live = [r for r in live if is_live_invocation(r)]
            time.sleep(CANCEL_POLL)
        report.left = [f"pid {r['pid']}" for r in live if is_live_invocation(r)]
        return report

    # -- launch-script here ------------------------------------------------------------------

    def launch_script(self, profile, command_line: str, runs: int, dry_run: bool,
                      events: Events) -> RunReport:
        """Run the line `runs` times in sequence after the profile's `env` lines, output straight
        to this terminal; a cpu profile hides the GPUs (`CUDA_VISIBLE_DEVICES=""`)."""
        text = "\n".join([*profile.env, command_line]) + "\n"
        if dry_run:
            times = f"{runs} times, in sequence" if runs > 1 else "once"
            return RunReport(finished=False, lines=[
                f"# would run here ({times}), profile {profile.name} (device {profile.device}):",
                text.rstrip("\n")])
        shell_line = shlex.join(["bash", "-c", text]) if profile.env else command_line
        env = gpu_environment(os.environ, () if profile.device == "cpu" else None)
        groups = self.groups = ProcessGroups()
        report = RunReport()
        for index in range(runs):
            if groups.stopping.is_set():
                break
            events.message(f"run {index + 1}/{runs} ({profile.name}): {command_line}")
            started = time.monotonic()
            proc = groups.spawn(shell_line, env, None, None)
            if proc is None:
                break
            try:
                code = proc.wait()
            finally:
                groups.finish(proc)
            duration = time.monotonic() - started
            result = CommandResult(command=command_line, duration=duration,
                                   status=Status.DONE if code == 0 else Status.FAILED,
                                   exit_status=code if code >= 0 else None,
                                   signal=-code if code < 0 else None)
            report.results.append(TaskResult(Task(f"run {index + 1}/{runs}", {}, {}), None,
                                             [result], result.status))
            how = (f"exit status {result.exit_status}" if result.exit_status is not None
                   else "killed by a signal")
            events.message(f"run {index + 1}/{runs}: {how} after {_duration(duration)}")
        groups.close()
        report.not_started = runs - len(report.results)
        return report


def _is_held(path: str) -> bool:
    """Whether an invocation holds the lock on its run table (so it still runs)."""
    lock = FileLock(path, directory=False)
    try:
        if lock.try_acquire():
            lock.release()
            return False
    except (UnsafePathError, DamagedFileError, OSError):
        return False
    return True


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"
