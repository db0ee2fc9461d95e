"""One `func(pset)` call: book-keeping fields, log capture, failure capture, per-row files."""

from __future__ import annotations

import os
import platform
import time
import traceback
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import partial
from io import StringIO
from typing import Any, Callable, Sequence

import pandas as pd

from runner.sweep.database import LOGS_COL, make_print_text
from runner.sweep.errors import SweepValueError
from runner.sweep.fileio import file_write, pickle_write
from runner.sweep.helpers import is_seq, makedirs
from runner.sweep.journal import write_row

CAPTURE_LOGS_MODES = ("file", "db", "db+file")
LOGS_FILENAME = "logs.txt"
FAILED_COL = "_failed"
EXC_TXT_COL = "_exc_txt"
TMPSAVE_DIRNAME = "tmpsave"


def _call_checked(func: Callable, pset: dict) -> Mapping:
    result = func(pset)
    if type(result) is not dict and not isinstance(result, Mapping):
        raise TypeError(
            f"func must return a dict (the row is pset.update(func(pset))), "
            f"got {type(result).__name__}: {result!r:.200}"
        )
    return result


def func_wrapper(
    pset: dict,
    func: Callable,
    *,
    tmpsave: bool = False,
    verbose: bool | Sequence[str] = False,
    simulate: bool = False,
    journal_dir: str | None = None,
) -> dict:
    """Call `func` on one pset; return the row `pset.update(func(pset))` plus `_pset_runtime`.

    Adds `_time_utc` and `_exec_host` first, prints the row with `verbose` (True or a list of
    columns), skips `func` with `simulate`, pickles the row to
    `<calc_dir>/tmpsave/<run_id>/<pset_id>.pk` with `tmpsave` and to `journal_dir` if given.
    """
    missing = [key for key in ("_pset_id", "_run_id", "_calc_dir") if key not in pset]
    if missing:
        raise SweepValueError(
            f"func_wrapper needs a pset with book-keeping fields; missing {missing}"
        )
    pset.update(_time_utc=pd.Timestamp(time.time_ns()), _exec_host=platform.node())
    if verbose:
        _print_row(pset, verbose)
    t0 = time.time()
    if not simulate:
        pset.update(_call_checked(func, pset))
    pset["_pset_runtime"] = time.time() - t0
    if tmpsave:
        pickle_write(
            os.path.join(
                pset["_calc_dir"], TMPSAVE_DIRNAME, pset["_run_id"], f"{pset['_pset_id']}.pk"
            ),
            pset,
        )
    if journal_dir is not None:
        write_row(journal_dir, pset)
    return pset


def _print_row(pset: dict, verbose: bool | Sequence[str]) -> None:
    row = pd.DataFrame([pset], index=[pset["_time_utc"]], dtype=object)
    if verbose is True:
        print(make_print_text(row, index=True))
    elif is_seq(verbose):
        print(make_print_text(row, index=True, cols=list(verbose)))
    else:
        raise SweepValueError(f"verbose must be a bool or a list of column names, got {verbose!r}")


def capture_logs_wrapper(
    pset: dict, func: Callable, capture_logs: str, db_field: str = LOGS_COL
) -> Mapping:
    """Call `func(pset)` with Python-level stdout and stderr redirected.

    "file": to `<calc_dir>/<pset_id>/logs.txt`; "db": to the result field `db_field`;
    "db+file": both. Output of subprocesses is not captured unless `func` prints it.
    """
    fn = os.path.join(pset["_calc_dir"], pset["_pset_id"], LOGS_FILENAME)
    if capture_logs == "file":
        makedirs(os.path.dirname(fn))
        with open(fn, "w") as fd, redirect_stdout(fd), redirect_stderr(fd):
            return _call_checked(func, pset)
    if capture_logs in ("db", "db+file"):
        with StringIO() as fd:
            with redirect_stdout(fd), redirect_stderr(fd):
                ret = dict(_call_checked(func, pset))
            txt = fd.getvalue()
        ret[db_field] = txt
        if capture_logs == "db+file":
            file_write(fn, txt)
        return ret
    raise SweepValueError(
        f"capture_logs={capture_logs!r} is not one of {', '.join(map(repr, CAPTURE_LOGS_MODES))}"
    )


def capture_failures_wrapper(pset: dict, func: Callable) -> dict:
    """Call `func(pset)`; an exception becomes `_failed=True` and its traceback in `_exc_txt`."""
    try:
        ret = dict(_call_checked(func, pset))
    except Exception:
        return {FAILED_COL: True, EXC_TXT_COL: traceback.format_exc()}
    ret.update({FAILED_COL: False, EXC_TXT_COL: None})
    return ret


@dataclass(frozen=True)
class PsetCall:
    """`func` with the options of one run, called on each pset (picklable for pools and workers)."""

    func: Callable
    capture_logs: str | None = None
    capture_failures: bool = False
    tmpsave: bool = False
    verbose: bool | Sequence[str] = False
    simulate: bool = False
    journal_dir: str | None = None

    def __call__(self, pset: dict) -> dict:
        func = self.func
        if self.capture_failures:
            func = partial(capture_failures_wrapper, func=func)
        if self.capture_logs is not None:
            func = partial(capture_logs_wrapper, func=func, capture_logs=self.capture_logs)
        return func_wrapper(
            pset,
            func,
            tmpsave=self.tmpsave,
            verbose=self.verbose,
            simulate=self.simulate,
            journal_dir=self.journal_dir,
        )


def failed_row_fields(exc_txt: str) -> dict[str, Any]:
    """The failure fields of a pset whose worker died before returning a row."""
    return {FAILED_COL: True, EXC_TXT_COL: exc_txt}
