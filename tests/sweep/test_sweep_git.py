"""git mode with real repositories (in a folder whose name has spaces and quotes)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import runner.sweep as ps

AWKWARD = "my study 'q' \"dq\" $x;"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def func_a(pset):
    return {"result_": pset["a"] * 10.0}


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An awkwardly named empty folder as cwd, git identity set, no repository above it."""
    for var, val in [
        ("GIT_AUTHOR_NAME", "T"),
        ("GIT_AUTHOR_EMAIL", "t@x"),
        ("GIT_COMMITTER_NAME", "T"),
        ("GIT_COMMITTER_EMAIL", "t@x"),
        ("GIT_CEILING_DIRECTORIES", str(tmp_path)),
    ]:
        monkeypatch.setenv(var, val)
    here = tmp_path / AWKWARD
    here.mkdir()
    monkeypatch.chdir(here)
    return here


@pytest.fixture
def repo(git_env: Path) -> Path:
    """A git repository with one commit (input.py)."""
    git("init", "-q")
    (git_env / "input.py").write_text("print('study')\n")
    git("add", "-A")
    git("commit", "-q", "-m", "init")
    return git_env


def test_run_git_commits_with_message(repo):
    assert ps.in_git_repo() and ps.git_clean()
    df = ps.run(func_a, ps.plist("a", [1, 2]), git=True)
    assert ps.git_clean()
    log = git("log", "--format=%s").splitlines()
    assert log == [f"psweep: {AWKWARD}: run_id={df._run_id.values[-1]}", "init"]
    assert "calc/database.pk" in git("show", "--name-only", "--format=", "HEAD").splitlines()
    df2 = ps.run(func_a, ps.plist("a", [3]), git=True)
    assert (
        git("log", "-1", "--format=%s").strip()
        == f"psweep: {AWKWARD}: run_id={df2._run_id.values[-1]}"
    )


def test_run_git_refuses_dirty_tree(repo):
    (repo / "input.py").write_text("changed\n")
    called = []
    with pytest.raises(ps.SweepError, match="dirty"):
        ps.run(lambda pset: called.append(1) or {}, ps.plist("a", [1]), git=True)
    assert called == [] and not os.path.exists("calc")
    assert not ps.git_clean()


def test_run_git_refuses_untracked_files(repo):
    (repo / "new.txt").write_text("x")
    with pytest.raises(Exception, match="dirty"):
        ps.run(func_a, ps.plist("a", [1]), git=True)


def test_run_git_refuses_outside_repo(git_env):
    assert not ps.in_git_repo()
    with pytest.raises(Exception, match="not in a git repo"):
        ps.run(func_a, ps.plist("a", [1]), git=True)
    assert not os.path.exists("calc")
    ps.run(func_a, ps.plist("a", [1]))  # git=False does not care


def test_git_enter_always_commit(git_env):
    (git_env / "input.py").write_text("x = 1\n")
    ps.git_enter(True, always_commit=True)
    assert git("log", "--format=%s").splitlines() == [f"psweep: {AWKWARD}: init"]
    (git_env / "input.py").write_text("x = 2\n")
    ps.git_enter(True, always_commit=True)
    assert git("log", "-1", "--format=%s").strip() == f"psweep: {AWKWARD}: local changes"
    assert ps.git_clean()


def test_git_exit_without_changes_makes_no_commit(repo):
    df = ps.run(func_a, ps.plist("a", [1]), save=False)
    ps.git_exit(True, df)
    assert git("log", "--format=%s").splitlines() == ["init"]
    ps.git_exit(False, df)
