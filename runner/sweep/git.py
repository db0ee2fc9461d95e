"""git mode: refuse to run on a dirty tree, commit everything after the run.

Commands run without a shell, so folder names with spaces or quotes are safe.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from runner.sweep.errors import SweepGitError
from runner.sweep.helpers import fullpath

COMMIT_PREFIX = "psweep"
GIT_ADD_ALL = "git add -A -v"  # psweep's constant: the command that stages everything


def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run git; on failure the CalledProcessError carries git's output as a note."""
    try:
        return subprocess.run(["git", *args], check=check, capture_output=True, text=True)
    except subprocess.CalledProcessError as ex:
        ex.add_note(f"git {' '.join(args)}: {(ex.stderr or ex.stdout or '').strip()}")
        raise


def _here() -> str:
    return os.path.basename(fullpath(os.curdir))


def _commit_all(message: str) -> None:
    _git(*GIT_ADD_ALL.split()[1:])
    _git("commit", "-m", message)


def in_git_repo() -> bool:
    """True if the current folder is inside a git work tree."""
    return _git("status", check=False).returncode == 0


def git_clean() -> bool:
    """True if `git status --porcelain` shows nothing (no changes, no untracked files)."""
    return _git("status", "--porcelain").stdout == ""


def git_enter(use_git: bool, always_commit: bool = False) -> None:
    """Before a run: require a clean git repo here (or, with `always_commit`, make it one)."""
    if not use_git:
        return
    if not in_git_repo():
        if not always_commit:
            raise SweepGitError(
                f"git=True but {fullpath(os.curdir)} is not in a git repo; run `git init` first"
            )
        _git("init")
        _commit_all(f"{COMMIT_PREFIX}: {_here()}: init")
    if not git_clean():
        if not always_commit:
            raise SweepGitError(
                f"git=True but the work tree of {fullpath(os.curdir)} is dirty; "
                "commit or stash your changes first"
            )
        _commit_all(f"{COMMIT_PREFIX}: {_here()}: local changes")


def git_exit(use_git: bool, df: Any) -> None:
    """After a run: commit everything as `psweep: <basename of cwd>: run_id=<last _run_id>`."""
    if use_git and "_run_id" in getattr(df, "columns", ()) and len(df) > 0 and not git_clean():
        _commit_all(f"{COMMIT_PREFIX}: {_here()}: run_id={df._run_id.values[-1]}")
