"""Crash safety: each finished row is persisted at once, so a killed run loses nothing.

With `run(..., crash_safe=True)` every finished pset's row (the same dict that becomes the database
row) is pickled to `<calc_dir>/journal/<_run_id>/<_pset_id>.pk` by whichever process ran it, written
atomically (temporary file, then os.replace). When the run has written the database, its journal
folder is removed. A journal folder that is still there therefore belongs to a run that died
(kill -9, the OOM killer, an exception in the main process) before writing the database. Files
are not fsync'ed: this guards against a killed process, not against the machine losing power.

The next `run` on that calc_dir warns about such rows; `run(..., resume=True)` appends them to the
database (keeping their ids; `_run_seq`/`_pset_seq` are renumbered to follow the database) and does
not run those of its psets whose hash a recovered row already has (one recovered row stands for one
pset of `params`). Dask workers write the journal where they run: use a shared filesystem.
"""

from __future__ import annotations

import numbers
import os
import pickle
import shutil
from dataclasses import dataclass

from runner.sweep.fileio import pickle_write

JOURNAL_DIRNAME = "journal"
ROW_SUFFIX = ".pk"


def journal_root(calc_dir: str) -> str:
    return os.path.join(calc_dir, JOURNAL_DIRNAME)


def run_journal_dir(calc_dir: str, run_id: str) -> str:
    return os.path.join(journal_root(calc_dir), run_id)


def write_row(journal_dir: str, row: dict) -> None:
    """Persist one finished row atomically."""
    pickle_write(os.path.join(journal_dir, f"{row['_pset_id']}{ROW_SUFFIX}"), row)


@dataclass(frozen=True)
class Leftovers:
    """Rows that crashed runs persisted but never wrote to the database, one list per run."""

    runs: list[list[dict]]
    run_dirs: list[str]

    @property
    def rows(self) -> list[dict]:
        return [row for rows in self.runs for row in rows]


def read_leftovers(calc_dir: str, exclude_pset_ids: set) -> Leftovers:
    """The journal rows under `calc_dir` that are not in the database, run by run, in seq order.

    Rows whose `_pset_id` is in `exclude_pset_ids` (the run died after writing the database) are
    left out; half-written temporary files are ignored.
    """
    root = journal_root(calc_dir)
    if not os.path.isdir(root):
        return Leftovers([], [])
    runs, run_dirs = [], []
    for name in os.listdir(root):
        run_dir = os.path.join(root, name)
        if not os.path.isdir(run_dir):
            continue
        rows = []
        for fname in os.listdir(run_dir):
            if fname.endswith(ROW_SUFFIX) and not fname.startswith("."):
                with open(os.path.join(run_dir, fname), "rb") as fd:
                    row = pickle.load(fd)
                if row.get("_pset_id") not in exclude_pset_ids:
                    rows.append(row)
        rows.sort(key=_seq_key)
        runs.append(rows)
        run_dirs.append(run_dir)
    order = sorted(
        range(len(runs)), key=lambda idx: _seq_key(runs[idx][0]) if runs[idx] else (2, 0)
    )
    return Leftovers([runs[idx] for idx in order if runs[idx]], [run_dirs[idx] for idx in order])


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


def remove_run_dirs(calc_dir: str, run_dirs: list[str]) -> None:
    """Delete journal folders whose rows are in the database now, and the journal root if empty."""
    for run_dir in run_dirs:
        shutil.rmtree(run_dir, ignore_errors=True)
    root = journal_root(calc_dir)
    if os.path.isdir(root) and not os.listdir(root):
        os.rmdir(root)
