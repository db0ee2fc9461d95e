"""Helpers for tests that watch other processes and their files (imported as `support`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional


def run_process(argv: List[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """Start `python -m runner ARGV` as a real process in `cwd`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, "-m", "runner", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll `predicate` (another process's files) until it is truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError):
        return None


def statuses(output: Path) -> dict:
    """{task name: {command: status}} from every stat.json under `output`."""
    found = {}
    for stat in sorted(Path(output).glob("*/stat.json")):
        data = read_json(stat) or {}
        found[stat.parent.name] = {c: e.get("status") for c, e in data.items()}
    return found


def processes_in_group(pgid: int) -> List[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            pids.append(int(entry))
    return pids
