"""The database shared by runs at the same time: read at the start, merged and written under a lock.

Two `run`s on one calc_dir at the same time both keep all their rows. A run notes which database
file it started from (device, inode, size and modification time, and the `_pset_id`s in it). At
the end, holding an exclusive lock on the calc_dir folder itself (runner.store.files.FileLock: an
flock, which the kernel drops when its holder dies, so a killed run never leaves it locked), it
looks at the file again. If another run wrote it meanwhile, the rows that run added come first,
and this run's rows follow with `_run_seq`/`_pset_seq` renumbered to continue the database's
numbering (their ids stay; func saw the numbers of the database it started from). Then the
database is written (atomically) and the journal folders whose rows it now holds are removed,
still under the lock. Journal folders are also created and taken over only under this lock
(runner.sweep.journal). When nobody else wrote the database, this costs one lock and one stat.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Any, Collection, Sequence

import pandas as pd

from runner.store.files import FileLock
from runner.sweep.database import (
    append_rows,
    df_extract_dicts,
    df_update_pset_hash,
    df_write,
    object_frame,
)
from runner.sweep.errors import SweepError
from runner.sweep.helpers import makedirs

Signature = tuple  # (st_dev, st_ino, st_size, st_mtime_ns) of the database file


@dataclass(frozen=True)
class Snapshot:
    """The database file as a run found it at its start: None if there was none."""

    signature: Signature | None
    pset_ids: frozenset


def _signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def file_signature(fn: str) -> Signature | None:
    try:
        return _signature(os.stat(fn))
    except FileNotFoundError:
        return None


def _load(fn: str) -> tuple[pd.DataFrame | None, Signature | None]:
    """The pickled database and the signature of the very file it was read from."""
    try:
        fd = open(fn, "rb")
    except FileNotFoundError:
        return None, None
    with fd:
        signature = _signature(os.fstat(fd.fileno()))
        return pickle.load(fd), signature


def pset_ids(df: pd.DataFrame | None) -> frozenset:
    if df is None or "_pset_id" not in df.columns:
        return frozenset()
    return frozenset(df._pset_id.values)


def read_start(database_fn: str, df: pd.DataFrame | None) -> tuple[pd.DataFrame, Snapshot]:
    """The database to append to (`df`, else the file's content, else empty) and the snapshot."""
    loaded, signature = _load(database_fn)
    if df is None:
        df = loaded.astype(object) if loaded is not None else object_frame({}, [])
    return df, Snapshot(signature, pset_ids(loaded))


def database_lock(calc_dir: str) -> FileLock:
    """The lock around reading, merging and writing `calc_dir`'s database (a context manager)."""
    makedirs(calc_dir)
    return FileLock(calc_dir)


def _rows_added_since(
    database_fn: str, snapshot: Snapshot, df: pd.DataFrame, rows: Sequence[dict]
) -> list[dict]:
    """Rows another run wrote to the database since `snapshot`, other than those of `df` and
    `rows`."""
    if file_signature(database_fn) == snapshot.signature:
        return []
    known = pset_ids(df) | {row.get("_pset_id") for row in rows}
    try:
        disk, _ = _load(database_fn)
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as ex:
        raise SweepError(
            f"{database_fn} was changed by another process since this run started and cannot be "
            f"read now ({type(ex).__name__}: {ex}); nothing was written. Rows of a run with "
            "crash_safe=True stay in the journal for run(..., resume=True)"
        ) from ex
    if disk is None or "_pset_id" not in disk.columns:
        return []
    new = ~disk._pset_id.isin(snapshot.pset_ids | frozenset(known))
    return df_extract_dicts(disk[new.to_numpy(dtype=bool)])


def seq_max(df: pd.DataFrame) -> tuple[int, int]:
    """The largest `_run_seq` and `_pset_seq` of `df`; -1, -1 when empty."""
    if len(df) == 0:
        return -1, -1
    return int(df._run_seq.values.max()), int(df._pset_seq.values.max())


def renumber(rows: Sequence[dict], run_seq_old: int, pset_seq_old: int) -> list[dict]:
    """`rows` with `_run_seq`/`_pset_seq` continuing after the given numbers; rows of one run
    keep sharing one `_run_seq`, runs and rows keep their order, ids stay."""
    run_seqs: dict[Any, int] = {}
    out = []
    for row in rows:
        run_seq = run_seqs.setdefault(row.get("_run_seq"), run_seq_old + 1 + len(run_seqs))
        pset_seq_old += 1
        out.append({**row, "_run_seq": run_seq, "_pset_seq": pset_seq_old})
    return out


def write_merged(
    database_fn: str,
    df: pd.DataFrame,
    rows: Sequence[dict],
    snapshot: Snapshot,
    fill_value: Any,
    own_ids: Collection = (),
) -> pd.DataFrame:
    """Write `df` plus `rows`, with the rows others added since `snapshot` in between; the
    database as written. `own_ids`: rows of `df` that this run added (recovered from dead
    runs), which also follow the others' rows. Call holding `database_lock`."""
    others = _rows_added_since(database_fn, snapshot, df, rows)
    if others:
        own = df._pset_id.isin(frozenset(own_ids)).to_numpy(dtype=bool) if len(own_ids) else None
        if own is not None and own.any():
            rows = df_extract_dicts(df[own]) + list(rows)
            df = df[~own]
        df = df_update_pset_hash(append_rows(df, others, fill_value))
        rows = renumber(rows, *seq_max(df))
    df = append_rows(df, rows, fill_value)
    df_write(database_fn, df)
    return df
