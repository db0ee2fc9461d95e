"""`run`: call func on every pset and keep the database of params and results."""

from __future__ import annotations

import os
import shutil
import warnings
from collections import Counter
from contextlib import nullcontext
from typing import Any, Callable, Sequence

import pandas as pd

from runner.store.files import read_bytes
from runner.sweep import journal, merge
from runner.sweep.call import CAPTURE_LOGS_MODES, PsetCall
from runner.sweep.database import CALC_DIR, DATABASE_BASENAME, append_rows, df_update_pset_cols
from runner.sweep.errors import SweepFileExistsError, SweepValueError, SweepWarning
from runner.sweep.execution import check_modes, map_psets
from runner.sweep.fileio import write_bytes
from runner.sweep.git import git_enter, git_exit
from runner.sweep.hashing import FILL_VALUE, pset_hash, union_keys, wash_params
from runner.sweep.helpers import get_many_uuids, get_uuid, makedirs
from runner.sweep.merge import seq_max
from runner.sweep.params import filter_params_dup_hash

SIMULATE_SUFFIX = ".simulate"
BACKUP_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def setup_simulate_dir(calc_dir: str, database_basename: str) -> str:
    """Fresh `<calc_dir>.simulate` holding a copy of the database only; its path."""
    sim_dir = calc_dir + SIMULATE_SUFFIX
    if os.path.exists(sim_dir):
        shutil.rmtree(sim_dir)
    makedirs(sim_dir)
    old_db = os.path.join(calc_dir, database_basename)
    if os.path.exists(old_db):
        write_bytes(os.path.join(sim_dir, database_basename), read_bytes(old_db))
    else:
        warnings.warn(
            f"simulate: {old_db} not found, will create new db in {sim_dir}", stacklevel=3
        )
    return sim_dir


def make_backup_path(calc_dir: str, df: pd.DataFrame) -> str:
    """`<calc_dir>.bak_<latest _time_utc>_run_id_<last _run_id>`."""
    stamp = df._time_utc.max().strftime(BACKUP_TIME_FORMAT)
    return f"{calc_dir}.bak_{stamp}_run_id_{df._run_id.values[-1]}"


def backup_calc_dir(calc_dir: str, df: pd.DataFrame) -> str:
    """Copy `calc_dir` (symlinks kept as links) to its backup path; the path."""
    dst = make_backup_path(calc_dir, df)
    if os.path.exists(dst):
        raise SweepFileExistsError(
            f"backup destination {dst} exists: there seems to be no new data in {calc_dir} "
            "since the last backup"
        )
    shutil.copytree(calc_dir, dst, symlinks=True)
    return dst


def _check_options(capture_logs: str | None, save: bool, crash_safe: bool, resume: bool) -> None:
    if capture_logs is not None and capture_logs not in CAPTURE_LOGS_MODES:
        raise SweepValueError(
            f"capture_logs={capture_logs!r} is not one of None, "
            + ", ".join(map(repr, CAPTURE_LOGS_MODES))
        )
    for name, val in (("crash_safe", crash_safe), ("resume", resume)):
        if val and not save:
            raise SweepValueError(
                f"{name}=True keeps rows for the database on disk; it needs save=True"
            )


def _recover(
    calc_dir: str, df: pd.DataFrame, resume: bool, fill_value: Any
) -> tuple[pd.DataFrame, journal.Leftovers]:
    """Rows of dead runs: appended to `df` with `resume`, else a warning about them.

    Call under the database lock; with `resume`, the leftovers hold the dead runs' folder locks.
    """
    known = set(df._pset_id.values) if "_pset_id" in df.columns else set()
    leftovers = journal.read_leftovers(calc_dir, exclude_pset_ids=known, take=resume)
    if resume:
        try:
            rows = journal.renumber(leftovers, *seq_max(df))
            return append_rows(df, rows, fill_value), leftovers
        except BaseException:
            leftovers.release()
            raise
    if leftovers.rows:
        warnings.warn(
            SweepWarning(
                f"{journal.journal_root(calc_dir)} holds {len(leftovers.rows)} finished rows of "
                f"{len(leftovers.runs)} run(s) that did not write the database (crashed?); "
                "run(..., resume=True) adds them"
            ),
            stacklevel=3,
        )
    return df, journal.Leftovers([], [])


def _skip_recovered(params: list[dict], rows: Sequence[dict]) -> list[dict]:
    """`params` without one pset per recovered row of the same hash."""
    left = Counter(row.get("_pset_hash") for row in rows)
    kept = []
    for pset in params:
        if left[pset["_pset_hash"]] > 0:
            left[pset["_pset_hash"]] -= 1
        else:
            kept.append(pset)
    return kept


def run(
    func: Callable[[dict], dict],
    params: Sequence[dict],
    df: pd.DataFrame | None = None,
    poolsize: int | None = None,
    dask_client: Any = None,
    save: bool = True,
    tmpsave: bool = False,
    verbose: bool | Sequence[str] = False,
    calc_dir: str = CALC_DIR,
    simulate: bool = False,
    database_basename: str = DATABASE_BASENAME,
    backup: bool = False,
    git: bool = False,
    skip_dups: bool = False,
    capture_logs: str | None = None,
    fill_value: Any = FILL_VALUE,
    *,
    crash_safe: bool = False,
    resume: bool = False,
    capture_failures: bool = False,
    gpus: Sequence[int | str] | None = None,
) -> pd.DataFrame:
    """Call `func(pset)` for each pset in `params`; return (and save) the database, new rows added.

    psweep's options: `df` to append to (default: read `<calc_dir>/<database_basename>` if it
    exists); `poolsize` (worker processes, see runner.sweep.workers) or `dask_client`
    (client.map); `save` the database; `tmpsave` each row to
    `<calc_dir>/tmpsave/<run_id>/<pset_id>.pk`; `verbose` print rows (True or a list of columns);
    `simulate` in `<calc_dir>.simulate` without calling func; `backup` calc_dir first; `git`
    commit before and after; `skip_dups` psets whose hash is in the database; `capture_logs`
    "file", "db" or "db+file"; `fill_value` for missing values.

    The database is written under a lock, merged with the rows other runs on the same calc_dir
    wrote meanwhile (see runner.sweep.merge); with `save` the DataFrame returned is what was
    written.

    Opt-in additions (all off by default):

    * `crash_safe`: persist each finished row at once under `<calc_dir>/journal/` (see
      runner.sweep.journal); `resume`: append rows that crashed runs left there and do not run
      their psets again.
    * `capture_failures`: an exception in func becomes a row with `_failed=True` and the
      traceback in `_exc_txt` (successful rows get `_failed=False`), and the run goes on.
    * `gpus`: run func in one spawned worker per slot, e.g. [0, 1, "2,3"], each with its
      `CUDA_VISIBLE_DEVICES` (see runner.sweep.gpuslots).
    """
    _check_options(capture_logs, save, crash_safe, resume)
    slots = check_modes(poolsize, dask_client, gpus)
    params = wash_params(params, fill_value)

    git_enter(git)
    if simulate:
        calc_dir = setup_simulate_dir(calc_dir, database_basename)
    database_fn = os.path.join(calc_dir, database_basename)
    df, snapshot = merge.read_start(database_fn, df)

    if backup and len(df) > 0:
        backup_calc_dir(calc_dir, df)

    for pset in params:
        pset["_pset_hash"] = pset_hash(pset)

    journal_lock = None
    leftovers = journal.Leftovers([], [])
    with _start_lock(calc_dir, save and (crash_safe or resume or journal.has_journal(calc_dir))):
        if save:
            df, leftovers = _recover(calc_dir, df, resume, fill_value)
        try:
            if len(df) > 0:
                df = df_update_pset_cols(
                    df, pset_cols=union_keys(params), fill_value=fill_value, copy=True
                )
                if skip_dups:
                    params = filter_params_dup_hash(params, df._pset_hash.values)
            if resume:
                params = _skip_recovered(params, leftovers.rows)
            run_id = _number_psets(params, df, calc_dir)
            if crash_safe:
                journal_lock = journal.create_run_dir(calc_dir, run_id)
        except BaseException:
            leftovers.release()
            raise
    try:
        call = PsetCall(
            func,
            capture_logs=capture_logs,
            capture_failures=capture_failures,
            tmpsave=tmpsave,
            verbose=verbose,
            simulate=simulate,
            journal_dir=journal_lock.path if journal_lock is not None else None,
        )
        try:
            rows = map_psets(
                call,
                params,
                poolsize=poolsize,
                dask_client=dask_client,
                slots=slots,
                capture_failures=capture_failures,
            )
        except BaseException:
            if journal_lock is not None:  # keep the journal only if it holds finished rows
                with merge.database_lock(calc_dir):
                    journal.remove_run_dir_if_empty(calc_dir, journal_lock.path)
            raise
        if save:
            with merge.database_lock(calc_dir):
                df = merge.write_merged(
                    database_fn, df, rows, snapshot, fill_value, own_ids=_ids(leftovers.rows)
                )
                done = leftovers.run_dirs
                if journal_lock is not None:
                    done = [journal_lock.path, *done]
                if done:
                    journal.remove_run_dirs(calc_dir, done)
        else:
            df = append_rows(df, rows, fill_value)
    finally:
        if journal_lock is not None:
            journal_lock.release()
        leftovers.release()
    git_exit(git, df)
    return df


def _start_lock(calc_dir: str, needed: bool) -> Any:
    """The database lock while a run looks for dead runs' journals and creates its own."""
    return merge.database_lock(calc_dir) if needed else nullcontext()


def _ids(rows: Sequence[dict]) -> set:
    return {row.get("_pset_id") for row in rows}


def _number_psets(params: list[dict], df: pd.DataFrame, calc_dir: str) -> str:
    """Give each pset its book-keeping fields, continuing `df`'s numbering; the new run id."""
    run_seq_old, pset_seq_old = seq_max(df)
    run_id = get_uuid(existing=df._run_id.values if len(df) > 0 else [])
    pset_ids = get_many_uuids(len(params), existing=df._pset_id.values if len(df) > 0 else [])
    for idx, (pset, pset_id) in enumerate(zip(params, pset_ids)):
        pset.update(
            _pset_id=pset_id,
            _run_seq=run_seq_old + 1,
            _pset_seq=pset_seq_old + idx + 1,
            _run_id=run_id,
            _calc_dir=calc_dir,
        )
    return run_id
