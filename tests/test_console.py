"""What a person at a terminal sees: the live progress line, and `run status` as a table."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def on_a_terminal(workdir, *argv, env=None):
    """(exit status, everything printed) of `run ARGV` with a terminal as its output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runner", *argv], cwd=workdir, stdout=slave,
                            stderr=slave, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the terminal closed: the run is over
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode()


def test_live_progress_line_on_a_terminal(make_config, workdir):
    make_config("""
        template:
          t: sleep 1.5
        resource: [0]
        ---
        i: [1, 2]
    """)
    code, text = on_a_terminal(workdir)
    assert code == 0
    assert "\r\x1b[K" in text
    assert "done 0 | failed 0 | running 1 | left 1 |" in text
    assert "done 1 | failed 0 | running 1 | left 0 |" in text and "ETA" in text


def test_piped_output_has_no_progress_line(make_config, cli):
    make_config("template:\n  t: echo 1\n---\ni: [1]\n")
    result = cli()
    assert "\r" not in result.out and "running 1" not in result.out


def test_status_table(make_config, cli, workdir):
    make_config("""
        template:
          train: echo {i}
          test: exit {i}
        resource: [2]
        ---
        i: [0, 1]
    """)
    assert cli().code == 1
    result = cli("status")
    assert result.code == 1  # a task failed
    rows = [line.split() for line in result.out.splitlines()]
    assert rows[0] == ["TASK", "STATE", "COMMANDS", "DURATION", "GPUS", "LAST"]
    assert rows[1][:4] == ["I_0", "done", "train:done", "test:done"]
    assert rows[2][:4] == ["I_1", "failed", "train:done", "test:failed"]
    assert rows[1][5] == "2"
    assert result.out.splitlines()[-1] == "2 tasks: 1 done, 1 failed"


def test_every_module_imports_on_its_own():
    import runner

    root = os.path.dirname(runner.__file__)
    modules = []
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py") and not name.startswith("__main__"):
                rel = os.path.relpath(os.path.join(directory, name), os.path.dirname(root))
                modules.append(rel[:-3].replace(os.sep, ".").replace(".__init__", ""))
    failures = []
    for module in sorted(modules):
        if module.startswith("runner.sweep"):
            continue  # needs the [sweep] extra; its own tests import it
        result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                                text=True)
        if result.returncode:
            failures.append((module, result.stderr.strip().splitlines()[-1:]))
    assert failures == []
    assert len(modules) > 10


QUIET_SWEEP = """
template:
  a: echo a{i}
  b: test {i} -ne 2
resource: [0]
---
i: [1, 2]
"""


def test_default_quiet_and_verbose_lines(make_config, cli):
    make_config(QUIET_SWEEP)
    normal = cli()
    lines = normal.out.splitlines()
    assert sum(" done   I_" in line for line in lines) == 3  # one line per finished command
    assert not any(" start  " in line for line in lines)
    failed = next(line for line in lines if "FAILED I_2 b" in line)
    assert "log: output/I_2/log.b." in failed  # the log path of a failure
    assert "done   I_1 a" in normal.out and "log:" not in next(
        line for line in lines if "done   I_1 a" in line)
    quiet = cli("-q", "-f")
    assert " done   " not in quiet.out and "FAILED I_2 b" in quiet.out
    assert quiet.out.startswith("run: 2 tasks from params.yaml") and "summary:" in quiet.out
    verbose = cli("-v", "-f")
    assert verbose.out.count(" start  ") == 4 and "done   I_1 a (0.0 s) on slot 0" in verbose.out
    assert cli("-q", "-v").code == 2


def test_the_summary_names_the_output_and_where_to_look_next(make_config, cli):
    make_config(QUIET_SWEEP)
    result = cli("-o", "out dir")
    assert result.out.splitlines()[-1] == (
        "output: out dir  (more: run status -o out dir; run results -o out dir; "
        "run report -o out dir)")


def test_colour_only_on_a_terminal_without_no_color(make_config, workdir):
    make_config(QUIET_SWEEP)

    _, coloured = on_a_terminal(workdir, "-f")
    assert "\x1b[32mdone  \x1b[0m" in coloured and "\x1b[31mFAILED\x1b[0m" in coloured
    _, plain = on_a_terminal(workdir, "-f", env={"NO_COLOR": "1"})
    assert "\x1b[32m" not in plain and "\x1b[31m" not in plain and "\r\x1b[K" in plain


def test_progress_counts_tasks_and_a_task_between_commands_is_running():
    import io

    from runner.cli.console import Console
    from runner.task import CommandResult, Slot, Status, Task, TaskResult

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    console = Console(total=2, stream=terminal, commands=4)
    task = Task("T", {}, {"a": "x", "b": "y"})
    slot = Slot(0, ())
    console.command_started(task, slot, "a", "log")
    assert "running 1 | left 1" in console._progress() and "ETA" not in console._progress()
    console.command_ended(task, slot, CommandResult("a", Status.DONE, duration=1.0))
    progress = console._progress()
    assert "done 0 | failed 0 | running 1 | left 1" in progress  # between its two commands
    assert "ETA" in progress  # from the first finished command
    console.command_started(task, slot, "b", "log")
    console.command_ended(task, slot, CommandResult("b", Status.DONE))
    console.task_finished(TaskResult(task, slot, status=Status.DONE))
    assert "done 1 | failed 0 | running 0 | left 1" in console._progress()


def test_status_sorts_names_naturally(make_config, cli):
    make_config("template:\n  t: echo {bs}\n---\nbs: [16, 8, 128, 2]\n")
    assert cli().code == 0
    names = [line.split()[0] for line in cli("status").out.splitlines()[1:-1]]
    assert names == ["Bs_2", "Bs_8", "Bs_16", "Bs_128"]
    assert cli("status").out.splitlines()[-1] == "4 tasks: 4 done"
