"""What a person at a terminal sees: the live progress line, and `run status` as a table."""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def test_live_progress_line_on_a_terminal(make_config, workdir):
    make_config("""
        template:
          t: sleep 1.5
        resource: [0]
        ---
        i: [1, 2]
    """)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runner"], cwd=workdir, stdout=slave,
                            stderr=slave, stdin=subprocess.DEVNULL)
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
    text = b"".join(chunks).decode()
    assert proc.returncode == 0
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
