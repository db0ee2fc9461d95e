"""Crash safety: each finished row is persisted at once, so a killed run loses nothing.

With `run(..., crash_safe=True)` every finished pset's row (the same dict that becomes the database
row) is pickled to `<calc_dir>/journal/<_run_id>/<_pset_id>.pk` by whichever process ran it, written
atomically (runner.store.files.write_atomic). The run holds a lock on its journal folder (an
flock, which the kernel drops when the holder dies) from creating it until its rows are in the
database; then the folder is removed. A journal folder whose lock is free therefore belongs to a
run that died (kill -9, the OOM killer, an exception in the main process) before writing the
database; one whose lock is held belongs to a run still going, and is left alone (worker processes
forked for `poolsize` share the lock: a worker of a killed run that is still finishing its pset,
and may still write its row, keeps the folder live until it exits). Folders are
created and removed only under the database lock (runner.sweep.merge). Files are not fsync'ed:
this guards against a killed process, not against the machine losing power.

The next `run` on that calc_dir warns about such rows; `run(..., resume=True)` takes the dead runs'
folders (holding their locks, so two resuming runs never both take them), appends their rows to the
database (keeping their ids; `_run_seq`/`_pset_seq` are renumbered to follow the database) and does
not run those of its psets whose hash a recovered row already has (one recovered row stands for one
pset of `params`). Dask workers write the journal where they run: use a shared filesystem.
"""

from __future__ import annotations

import numbers
import os
import pickle
import shutil
from dataclasses import dataclass, field

from runner.store.files import FileLock
from runner.sweep.errors import SweepError
from runner.sweep.fileio import pickle_write

JOURNAL_DIRNAME = "journal"
ROW_SUFFIX = ".pk"


def journal_root(calc_dir: str) -> str:
    return os.path.join(calc_dir, JOURNAL_DIRNAME)


def has_journal(calc_dir: str) -> bool:
    return os.path.isdir(journal_root(calc_dir))


def run_journal_dir(calc_dir: str, run_id: str) -> str:
    return os.path.join(journal_root(calc_dir), run_id)


def write_row(journal_dir: str, row: dict) -> None:
    """Persist one finished row atomically."""
    pickle_write(os.path.join(journal_dir, f"{row['_pset_id']}{ROW_SUFFIX}"), row)


def create_run_dir(calc_dir: str, run_id: str) -> FileLock:
    """Create this run's journal folder and lock it; the lock, held until the run ends.

    Call under the database lock, so that no other run takes the new folder for a dead run's.
    """
    run_dir = run_journal_dir(calc_dir, run_id)
    os.makedirs(run_dir, exist_ok=True)
    lock = FileLock(run_dir)
    if not lock.try_acquire():
        raise SweepError(f"{run_dir}: journal folder of this run is locked by another process")
    return lock


@dataclass(frozen=True)
class Leftovers:
    """Rows that dead runs persisted but never wrote to the database, one list per run.

    `locks` holds the locks of `run_dirs` when they were taken (resume): release them once the
    rows are in the database and the folders are removed, or at once when the run fails.
    """

    runs: list[list[dict]]
    run_dirs: list[str]
    locks: list[FileLock] = field(default_factory=list)

    @property
    def rows(self) -> list[dict]:
        return [row for rows in self.runs for row in rows]

    def release(self) -> None:
        for lock in self.locks:
            lock.release()


def _is_dead_run(run_dir: str, take: bool) -> FileLock | None:
    """The lock of `run_dir` if no live run holds it (kept if `take`, else released), or None."""
    lock = FileLock(run_dir)
    try:
        if not lock.try_acquire():
            return None
    except FileNotFoundError:  # removed meanwhile by the run that wrote its rows
        return None
    if not take:
        lock.release()
    return lock


def read_leftovers(calc_dir: str, exclude_pset_ids: set, take: bool = False) -> Leftovers:
    """The journal rows of dead runs under `calc_dir` that are not in the database, run by run,
    in seq order; with `take`, their folders' locks too (see Leftovers).

    Folders of live runs (their lock is held) are skipped. Rows whose `_pset_id` is in
    `exclude_pset_ids` (the run died after writing the database) are left out; half-written
    temporary files are ignored. Call under the database lock.
    """
    root = journal_root(calc_dir)
    if not os.path.isdir(root):
        return Leftovers([], [])
    runs, run_dirs, locks = [], [], []
    try:
        for name in sorted(os.listdir(root)):
            run_dir = os.path.join(root, name)
            if name.startswith(".") or os.path.islink(run_dir) or not os.path.isdir(run_dir):
                continue
            lock = _is_dead_run(run_dir, take)
            if lock is None:
                continue
            if take:
                locks.append(lock)
            runs.append(_read_rows(run_dir, exclude_pset_ids))
            run_dirs.append(run_dir)
    except BaseException:
        Leftovers([], [], locks).release()
        raise
    order = sorted(
        range(len(runs)), key=lambda idx: _seq_key(runs[idx][0]) if runs[idx] else (2, 0)
    )
    return Leftovers(
        [runs[idx] for idx in order if runs[idx]], [run_dirs[idx] for idx in order], locks
    )


def _read_rows(run_dir: str, exclude_pset_ids: set) -> list[dict]:
    rows = []
    for fname in os.listdir(run_dir):
        if fname.endswith(ROW_SUFFIX) and not fname.startswith("."):
            with open(os.path.join(run_dir, fname), "rb") as fd:
                row = pickle.load(fd)
            if row.get("_pset_id") not in exclude_pset_ids:
                rows.append(row)
    rows.sort(key=_seq_key)
    return rows


def _seq_key(row: dict) -> tuple:
    seq = row.get("_pset_seq")
    return (0, int(seq)) if isinstance(seq, numbers.Integral) else (1, 0)


def renumber(leftovers: Leftovers, run_seq_old: int, pset_seq_old: int) -> list[dict]:
    """The recovered rows with `_run_seq`/`_pset_seq` continuing the database's numbering.

    Ids stay. When nothing ran since the crash and the first psets were the finished ones, the
    numbers do not change; otherwise this keeps `_pset_seq` equal to the row index.
    """
    out = []
    for run_seq, rows in enumerate(leftovers.runs, start=run_seq_old + 1):
        for row in rows:
            pset_seq_old += 1
            out.append({**row, "_run_seq": run_seq, "_pset_seq": pset_seq_old})
    return out


def remove_run_dir_if_empty(calc_dir: str, run_dir: str) -> None:
    """Delete a failed run's journal folder if no row was written to it (under the database
    lock), and the journal root if that leaves it empty."""
    try:
        os.rmdir(run_dir)
        os.rmdir(journal_root(calc_dir))
    except OSError:  # rows in it, or other runs' folders beside it
        pass


def remove_run_dirs(calc_dir: str, run_dirs: list[str]) -> None:
    """Delete journal folders whose rows are in the database now, and the journal root if empty.

    Call under the database lock, holding the folders' locks.
    """
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)
    root = journal_root(calc_dir)
    try:
        os.rmdir(root)
    except OSError:  # not empty (another run's folder), or not there
        pass
