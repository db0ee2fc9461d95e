"""Crash safety: rows persisted as they finish survive kill -9; resume=True picks them up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import runner.sweep as ps
from runner.store.files import FileLock
from runner.sweep import journal

DRIVER = """
import sys, threading
import runner.sweep as ps

def func(pset):
    if pset["a"] >= 3:
        open(f"blocked_{pset['a']}", "w").close()
        threading.Event().wait()  # hang until killed
    return {"result_": pset["a"] * 10}

if __name__ == "__main__":
    extra = {"poolsize": 2} if sys.argv[1] == "pool" else {}
    ps.run(func, ps.plist("a", range(6)), crash_safe=True, **extra)
"""


def func_ok(pset):
    return {"result_": pset["a"] * 10}


def wait_for(cond, what: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll `cond` until it holds; fail early if the driver exited."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, (
            f"driver exited with {proc.returncode} before {what}: {proc.stderr.read()}"
        )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def journal_files(calc: Path) -> list[Path]:
    root = calc / "journal"
    return [f for d in root.iterdir() for f in d.iterdir()] if root.exists() else []


def journal_rows(calc: Path) -> list[Path]:
    """Finished rows: not the temporary files that os.replace turns into them."""
    return [f for f in journal_files(calc) if f.suffix == ".pk" and not f.name.startswith(".")]


def crash_driver(workdir: Path, mode: str) -> None:
    """Run the driver until psets a=0..2 are done and it hangs, then SIGKILL its process group."""
    (workdir / "driver.py").write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, "driver.py", mode],
        cwd=workdir,
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (workdir / "blocked_3").exists(), "pset a=3 started", proc)
        wait_for(lambda: len(journal_rows(workdir / "calc")) == 3, "3 rows persisted", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # The pool's workers (forked, so they share the run's journal lock) die a moment later.
    deadline = time.monotonic() + 30
    while not all(journal_lock_free(run_dir) for run_dir in (workdir / "calc/journal").iterdir()):
        assert time.monotonic() < deadline, "the killed run's journal lock is still held"
        time.sleep(0.01)


def journal_lock_free(run_dir: Path) -> bool:
    lock = FileLock(str(run_dir))
    if lock.try_acquire():
        lock.release()
        return True
    return False


@pytest.mark.parametrize("mode", ["serial", "pool"])
def test_kill_9_loses_nothing_and_resume_picks_up(workdir, mode):
    crash_driver(workdir, mode)
    calc = workdir / "calc"
    assert not (calc / "database.pk").exists()
    assert journal_files(calc) == journal_rows(calc)  # all three writes had completed

    called = []

    def func(pset):
        called.append(pset["a"])
        return func_ok(pset)

    df = ps.run(func, ps.plist("a", range(6)), resume=True)
    assert sorted(called) == [3, 4, 5]
    assert df.a.tolist() == [0, 1, 2, 3, 4, 5] and df.result_.tolist() == [0, 10, 20, 30, 40, 50]
    assert df._run_seq.tolist() == [0, 0, 0, 1, 1, 1] and df._pset_seq.tolist() == list(range(6))
    assert df._run_id.nunique() == 2 and df._pset_id.nunique() == 6
    assert ps.df_read("calc/database.pk").equals(df)
    assert not (calc / "journal").exists()
    assert len(ps.run(func, ps.plist("a", [0]), resume=True)) == 7  # nothing left to pick up


def test_leftovers_warn_without_resume(workdir):
    crash_driver(workdir, "serial")
    with pytest.warns(ps.SweepWarning, match=r"3 finished rows of 1 run\(s\).*resume=True"):
        df = ps.run(func_ok, ps.plist("a", [7]))
    assert df.a.tolist() == [7]
    assert len(journal_rows(workdir / "calc")) == 3  # still there for a later resume
    with pytest.warns(ps.SweepWarning):
        ps.run(func_ok, [], save=True)
    df = ps.run(func_ok, ps.plist("a", range(6)), resume=True)
    # recovered rows follow what ran in between, so _pset_seq stays the row index
    assert df.a.tolist() == [7, 0, 1, 2, 3, 4, 5]
    assert df._pset_seq.tolist() == list(range(7)) and df._run_seq.tolist() == [0, 1, 1, 1, 2, 2, 2]


def test_crash_safe_journal_is_removed_after_success(workdir):
    seen = []

    def func(pset):
        seen.append(sorted(os.listdir(journal.run_journal_dir(pset["_calc_dir"], pset["_run_id"]))))
        return func_ok(pset)

    df = ps.run(func, ps.plist("a", [1, 2]), crash_safe=True)
    assert seen == [[], [f"{df._pset_id.values[0]}.pk"]]
    assert os.listdir("calc") == ["database.pk"]


def test_resume_skips_one_pset_per_recovered_row(workdir):
    db = ps.run(func_ok, ps.plist("a", [1]))
    run_dir = journal.run_journal_dir("calc", "crashed-run")
    row = {
        "a": 2,
        "_pset_hash": ps.pset_hash({"a": 2}),
        "_pset_id": "p-2",
        "_run_seq": 1,
        "_pset_seq": 1,
        "_run_id": "crashed-run",
        "_calc_dir": "calc",
        "_time_utc": pd.Timestamp.now(),
        "_exec_host": "h",
        "result_": 20,
        "_pset_runtime": 0.1,
    }
    journal.write_row(run_dir, row)
    journal.write_row(
        run_dir, {**row, "_pset_id": db._pset_id.values[0]}
    )  # already in the database
    Path(run_dir, ".half-written.pk.123.tmp").write_bytes(b"\x80")
    called = []
    df = ps.run(
        lambda pset: called.append(pset["a"]) or {}, [{"a": 2}, {"a": 2}, {"a": 3}], resume=True
    )
    assert called == [2, 3]
    assert df._pset_id.tolist()[:2] == [db._pset_id.values[0], "p-2"]
    assert df.a.tolist() == [1, 2, 2, 3] and df._pset_seq.tolist() == [0, 1, 2, 3]


def test_crash_safe_and_resume_need_save(workdir):
    for opt in ("crash_safe", "resume"):
        with pytest.raises(ValueError, match=f"{opt}=True .* needs save=True"):
            ps.run(func_ok, ps.plist("a", [1]), save=False, **{opt: True})
    assert os.listdir(workdir) == []
