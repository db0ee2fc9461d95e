"""`runner.sweep`: psweep's Python API (0.16), a drop-in: `import runner.sweep as ps`.

Same functions, signatures, database files, hashes and templates as psweep 0.16; the additions
are opt-in keywords of `run` (all off by default). Needs the `sweep` extra (pandas, joblib,
jinja2, tabulate), imported only when this package is: `pip install '.[sweep]'`.

Files a run writes (calc_dir="calc", database_basename="database.pk")::

    calc/database.pk                       run(), at the end (save=True): pickled DataFrame,
                                           merged with what other runs wrote meanwhile, under
                                           an flock on calc/ itself (see runner.sweep.merge)
    calc/<_pset_id>/logs.txt               the worker running the pset (capture_logs with "file")
    calc/tmpsave/<_run_id>/<_pset_id>.pk   the worker, per finished row (tmpsave=True)
    calc/journal/<_run_id>/<_pset_id>.pk   the worker, per finished row (crash_safe=True); removed
                                           once the database is written (see runner.sweep.journal)
    calc/<_pset_id>/..., calc/run_<m>.sh   prep_batch(): rendered templates and submit scripts
    calc.simulate/                         simulate=True: a copy of the database, then the run
    calc.bak_<time>_run_id_<id>/           backup=True: a copy of calc/ before the run

Modules: params (building params), hashing (pset_hash, washing), database (df_* helpers),
runloop (run), merge (the database shared by runs at the same time), call (one func call),
execution (serial, pool, dask), workers (worker processes), gpuslots (gpus=...), journal (crash
safety), templates (prep_batch), git, helpers, fileio, scripts (psweep-* CLIs).

Like psweep's, this namespace also hands on the modules and names psweep's code imports, which
psweep scripts call through it (`ps.np`, `ps.pd`, `ps.os`, `ps.pj`, `ps.GIT_ADD_ALL`, ...): every
public name of `dir(psweep)` is here, as the same object. `ps.jinja2` is imported on first use.
psweep's code lives in its module `psweep.psweep`; here `runner.sweep.psweep` is this package.

Where we differ from psweep 0.16 on purpose (psweep scripts keep working):

* Washing keeps each value's type (psweep let pandas infer per column, turning e.g. np.int64
  columns into ints and, on pandas 3, NA in text columns into nan).
* Errors are RunnerErrors that also derive from the type psweep raised (AssertionError,
  ValueError, TypeError); messages say what was expected.
* Every file is written atomically (runner.store.files.write_atomic); databases have an object
  column index, so pandas 2 can read databases written with pandas 3.
* Two runs at the same time on one calc_dir both keep their rows (psweep: the last to write
  the database wins); the later one's rows follow, renumbered (runner.sweep.merge).
* `poolsize` runs func in our own worker processes (forked like multiprocessing.Pool's, psets
  handed out in Pool.map's chunks), so a worker that dies or a KeyboardInterrupt in func ends
  the run at once with an error naming the pset; multiprocessing.Pool hangs forever there.
* In the `_logs` column, rows of runs without capture_logs "db" hold what psweep's hold (nan on
  pandas 3, the fill value on pandas 2), although washing keeps NA elsewhere.
* psweep-db2table refuses a table format tabulate does not know (tabulate falls back to
  "simple"); psweep-pull/push run rsync and ssh without a shell in between, and take the home
  folder itself to mean the remote home folder.
"""

# ruff: noqa: E402, I001  (the dependency check must run before the imports below)
from __future__ import annotations

import importlib
from typing import Any

from runner import __version__
from runner.sweep.errors import SweepDependencyError

for _module in ("pandas", "joblib"):
    try:
        importlib.import_module(_module)
    except ImportError as _ex:
        raise SweepDependencyError(_module, "sweep", "runner.sweep") from _ex

# The names psweep's namespace hands on (its module imports them); psweep scripts use them.
import copy
import itertools
import json
import multiprocessing as mp
import os
import pickle
import platform
import re
import shutil
import string
import subprocess
import sys
import time
import uuid
import warnings
from contextlib import redirect_stderr, redirect_stdout
from functools import partial, wraps
from io import IOBase, StringIO
from typing import Callable, Iterator, Sequence

import joblib
import numpy as np
import pandas as pd
import yaml

pj = os.path.join

from runner.sweep.call import capture_failures_wrapper, capture_logs_wrapper, func_wrapper
from runner.sweep.database import (
    CALC_DIR,
    DATABASE_BASENAME,
    PANDAS_DEFAULT_ORIENT,
    PANDAS_TIME_UNIT,
    check_calc_dir,
    df_ensure_dtypes,
    df_extract_dicts,
    df_extract_params,
    df_extract_pset,
    df_extract_row,
    df_filter_conds,
    df_print,
    df_read,
    df_to_json,
    df_update_pset_cols,
    df_update_pset_hash,
    df_write,
    filter_cols,
)
from runner.sweep.errors import PsweepHashError, SweepError, SweepWarning
from runner.sweep.fileio import (
    file_read,
    file_write,
    json_read,
    json_write,
    pickle_read,
    pickle_write,
)
from runner.sweep.git import GIT_ADD_ALL, git_clean, git_enter, git_exit, in_git_repo
from runner.sweep.hashing import FILL_VALUE, PSET_HASH_ALG, pset_hash
from runner.sweep.helpers import (
    flatten,
    flatten_dict,
    fullpath,
    get_many_uuids,
    get_uuid,
    is_seq,
    itr,
    makedirs,
    system,
)
from runner.sweep.params import (
    filter_params_dup_hash,
    filter_params_unique,
    intspace,
    itr2params,
    logspace,
    merge_dicts,
    pgrid,
    plist,
    stargrid,
)
from runner.results import read_results
from runner.sweep.runloop import run
from runner.sweep.templates import (
    FileTemplate,
    Machine,
    gather_calc_templates,
    gather_machines,
    prep_batch,
)
# psweep's package re-exports its module psweep.psweep (`ps.psweep.run`, `from psweep.psweep
# import run`); here that module is this package itself.
psweep = sys.modules[__name__]
sys.modules[f"{__name__}.psweep"] = psweep

_LAZY_MODULES = ("jinja2",)  # psweep imports it at once; we do when it is first asked for


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as ex:
            raise SweepDependencyError(name, "sweep", f"runner.sweep.{name}") from ex
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES))


# psweep has no __all__, so `from psweep import *` gives every public name, modules included.
__all__ = [
    # what psweep's namespace hands on
    "Any",
    "Callable",
    "GIT_ADD_ALL",
    "IOBase",
    "Iterator",
    "Sequence",
    "StringIO",
    "copy",
    "importlib",
    "itertools",
    "jinja2",
    "joblib",
    "json",
    "mp",
    "np",
    "os",
    "partial",
    "pd",
    "pickle",
    "pj",
    "platform",
    "psweep",
    "re",
    "redirect_stderr",
    "redirect_stdout",
    "shutil",
    "string",
    "subprocess",
    "sys",
    "time",
    "uuid",
    "warnings",
    "wraps",
    "yaml",
    # psweep's API and ours
    "CALC_DIR",
    "DATABASE_BASENAME",
    "FILL_VALUE",
    "PANDAS_DEFAULT_ORIENT",
    "PANDAS_TIME_UNIT",
    "PSET_HASH_ALG",
    "FileTemplate",
    "Machine",
    "PsweepHashError",
    "SweepError",
    "SweepWarning",
    "__version__",
    "capture_failures_wrapper",
    "capture_logs_wrapper",
    "check_calc_dir",
    "df_ensure_dtypes",
    "df_extract_dicts",
    "df_extract_params",
    "df_extract_pset",
    "df_extract_row",
    "df_filter_conds",
    "df_print",
    "df_read",
    "df_to_json",
    "df_update_pset_cols",
    "df_update_pset_hash",
    "df_write",
    "file_read",
    "file_write",
    "filter_cols",
    "filter_params_dup_hash",
    "filter_params_unique",
    "flatten",
    "flatten_dict",
    "fullpath",
    "func_wrapper",
    "gather_calc_templates",
    "gather_machines",
    "get_many_uuids",
    "get_uuid",
    "git_clean",
    "git_enter",
    "git_exit",
    "in_git_repo",
    "intspace",
    "is_seq",
    "itr",
    "itr2params",
    "json_read",
    "json_write",
    "logspace",
    "makedirs",
    "merge_dicts",
    "pgrid",
    "pickle_read",
    "pickle_write",
    "plist",
    "prep_batch",
    "pset_hash",
    "read_results",
    "run",
    "stargrid",
    "system",
]
