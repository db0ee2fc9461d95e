"""Errors and warnings of `runner.sweep`.

psweep signalled bad input mostly with `assert` (AssertionError), sometimes with ValueError or a
bare Exception. Our errors are `RunnerError`s with clear messages, and each also derives from the
built-in type psweep raised there, so `except AssertionError` / `except ValueError` in psweep
scripts keep working.
"""

from __future__ import annotations

from runner.errors import MissingDependencyError, RunnerError


class SweepError(RunnerError):
    """Base of the errors `runner.sweep` raises on purpose."""


class SweepValueError(SweepError, ValueError, AssertionError):
    """A bad argument or parameter value (psweep: ValueError or AssertionError)."""


class SweepTypeError(SweepError, TypeError, AssertionError):
    """An argument of the wrong type (psweep: TypeError or AssertionError)."""


class SweepFileExistsError(SweepError, FileExistsError, AssertionError):
    """A path that must not exist yet, e.g. a backup destination (psweep: AssertionError)."""


class SweepGitError(SweepError):
    """git mode refused: not in a git repository, or the work tree is dirty."""


class SweepWorkerError(SweepError, RuntimeError):
    """A GPU slot's worker process died or could not be started."""


class PsweepHashError(SweepError, TypeError):
    """A pset could not be hashed (psweep's name and type)."""


class SweepDependencyError(MissingDependencyError, ImportError):
    """pandas, joblib or jinja2 is missing; the message names the extra to install."""


class SweepWarning(UserWarning):
    """Something a sweep user should look at, e.g. rows of a crashed run waiting to be resumed."""
