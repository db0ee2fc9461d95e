"""Shared fixtures: a config written into a fresh working directory, the CLI in-process and as a
real subprocess, and polling helpers for tests that watch another process's files."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
