"""Shared fixtures: a config written into a fresh working directory, the CLI in-process and as a
real subprocess, and polling helpers for tests that watch another process's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from runner.cli import main

# Child processes (`python -m runner`, the `run` script) import this checkout's package.
ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh current directory for the test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_config(workdir: Path) -> Callable[..., Path]:
    """make_config(text, name='params.yaml'): write a (dedented) YAML file into the workdir."""

    def make(text: str, name: str = "params.yaml") -> Path:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return make


@pytest.fixture
def cli(capsys: pytest.CaptureFixture) -> Callable[..., Result]:
    """cli('-y', 'x.yaml', ...): run the `run` command in-process; returns code, stdout, stderr."""

    def call(*argv: str) -> Result:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


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
