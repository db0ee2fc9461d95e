"""One run of tasks on slots, as a person at a terminal sees it: what `run -y` and `run launch`
share. Workers start, the console prints each command and the progress line, Ctrl-C and SIGTERM
stop every running command (a second time at once), and the summary and exit status follow."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, ContextManager, List, Optional, Sequence

from runner.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, stop_on_signals
from runner.task import Slot, Task, TaskResult


def run_session(tasks: List[Task], slots: Sequence[Slot], store: Any, datetime: str,
                options: Any, grace: float, skipped: int, noun: str = "commands",
                admission: Any = None, around: Optional[Callable[[], ContextManager]] = None
                ) -> int:
    """Run `tasks` with the executor on `store`; print the summary; return the exit status.

    `around()` is entered once signals are handled and left before the summary (e.g. a writer
    of shared metadata that must flush on Ctrl-C too).
    """
    from runner.cli.console import Console, write_summary
    from runner.execution.executor import TaskExecutor
    from runner.execution.process import ProcessGroups
    from runner.execution.scheduler import Scheduler

    groups = ProcessGroups(grace=grace)
    console = Console(total=len(tasks))
    executor = TaskExecutor(store, datetime, groups, options, console)
    scheduler = Scheduler(slots, executor, groups, on_result=console.task_finished,
                          admission=admission, on_wait=console.waiting_for)
    signals: List[int] = []

    def stop(signum: int) -> None:
        signals.append(signum)
        console.notice(f"stopping: terminating running {noun} (again to kill them at once)"
                       if len(signals) == 1 else f"killing running {noun}")
        groups.stop()

    started = time.monotonic()
    results: List[TaskResult] = []
    with stop_on_signals(stop), (around() if around else contextlib.nullcontext()):
        try:
            results = scheduler.run(tasks, tick=1.0 if console.live else None,
                                    on_tick=console.tick)
        finally:
            groups.close()
            console.clear()
    write_summary(sys.stdout, results, skipped, len(tasks) - len(results),
                  time.monotonic() - started)
    if signals:
        return EXIT_INTERRUPTED
    if any(r.failed is not None for r in results):
        return EXIT_FAILED
    return EXIT_OK
