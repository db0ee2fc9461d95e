"""`runner.sweep`: psweep's Python API (0.16), a drop-in: `import runner.sweep as ps`.

Same functions, database files, hashes and templates as psweep; additions are opt-in keywords of
`run` (`crash_safe`/`resume`, `capture_failures`, `gpus`). Needs the `sweep` extra (pandas,
joblib, jinja2), imported only when this package is.
"""

from __future__ import annotations

import importlib

from runner import __version__
from runner.sweep.errors import SweepDependencyError

for _module in ("pandas", "joblib"):
    try:
        importlib.import_module(_module)
    except ImportError as _ex:
        raise SweepDependencyError(_module, "sweep", "runner.sweep") from _ex

from runner.sweep.call import capture_failures_wrapper, capture_logs_wrapper, func_wrapper  # noqa: E402
from runner.sweep.database import (  # noqa: E402
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
from runner.sweep.errors import PsweepHashError, SweepError, SweepWarning  # noqa: E402
from runner.sweep.fileio import file_read, file_write, json_read, json_write, pickle_read, pickle_write  # noqa: E402
from runner.sweep.git import git_clean, git_enter, git_exit, in_git_repo  # noqa: E402
from runner.sweep.hashing import FILL_VALUE, PSET_HASH_ALG, pset_hash  # noqa: E402
from runner.sweep.helpers import (  # noqa: E402
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
from runner.sweep.params import (  # noqa: E402
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
from runner.sweep.runloop import run  # noqa: E402
from runner.sweep.templates import FileTemplate, Machine, gather_calc_templates, gather_machines, prep_batch  # noqa: E402

__all__ = [
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
    "run",
    "stargrid",
    "system",
]
