"""Every error the library raises on purpose. The CLI prints them as one line and exits 2."""

from __future__ import annotations

import difflib
from typing import Iterable


class RunnerError(Exception):
    """Base of the errors that describe bad input or an unusable environment."""


class ConfigError(RunnerError):
    """A YAML file, runfile, gridspec or profile is missing, malformed or inconsistent."""


class UsageError(RunnerError):
    """Command-line options that cannot work together or name things that do not exist."""


class ResourceError(RunnerError):
    """A slot, GPU or resource request that cannot be satisfied."""


class StoreError(RunnerError):
    """An output directory or state file that cannot be read or written."""


class UnsafePathError(StoreError):
    """A path where the runner would write is a link, a FIFO, a device or a directory.

    Never written through; the task it belongs to is not run (the others go on).
    """

    def __init__(self, path: str, what: str):
        super().__init__(f"{path}: {what}; refusing to write through it")
        self.path = path


class DamagedFileError(StoreError):
    """A state file that is truncated, not JSON, or JSON of the wrong shape."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class WriteError(StoreError):
    """The operating system refused a write: a full disk, no permission, a read-only file system."""

    def __init__(self, path: str, error: OSError):
        super().__init__(f"{path}: cannot write it ({error.strerror or error})")
        self.path = path
        self.errno = error.errno


class BackendError(RunnerError):
    """An execution engine (SLURM, dask, ...) refused or failed a request."""


def install_hint(extra: str) -> str:
    """How to install an optional part: the package is installed from a clone of its
    repository (its distribution name, sweep-runner, is not on the package index)."""
    return f"pip install '.[{extra}]' in a clone of the runner repository"


class MissingDependencyError(RunnerError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str):
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed; "
            f"install it with: {install_hint(extra)}"
        )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    others = [str(c) for c in choices if str(c) != str(word)]
    close = difflib.get_close_matches(str(word), others, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    """'a', 'b', 'c' for an error message."""
    return ", ".join(f"'{c}'" for c in choices) or "(none)"
