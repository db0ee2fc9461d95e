"""Runs at the same time on one calc_dir: every row of every run ends up in the database.

Real processes, synchronised through files so that their runs overlap: each run has read the
database and started calling func before either of them writes it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import runner.sweep as ps

# argv: tag, other tag (or "-"), crash_safe (0/1), mode (serial/pool), psets
DRIVER = """
import os, sys, time
import runner.sweep as ps

tag, other, crash_safe, mode, n = sys.argv[1:6]
crash_safe, n = crash_safe == "1", int(n)

def wait_for(path):
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"{tag}: timed out waiting for {path}")
        time.sleep(0.002)

def func(pset):
    if pset["i"] == 0:
        open(f"started_{tag}", "w").close()
        if other != "-":
            wait_for(f"started_{other}")  # both runs have read the database and are running
    if pset["i"] == 2 and os.path.exists(f"hold_{tag}"):
        wait_for(f"release_{tag}")
    return {"result_": f"{tag}-{pset['i']}"}

if __name__ == "__main__":
    extra = {"poolsize": 2} if mode == "pool" else {}
    params = ps.pgrid(ps.plist("run", [tag]), ps.plist("i", range(n)))
    df = ps.run(func, params, crash_safe=crash_safe, **extra)
    print(len(df))
"""


def start(workdir: Path, tag: str, other: str, crash_safe: bool, mode: str = "serial",
          n: int = 5) -> subprocess.Popen:
    (workdir / "driver.py").write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, "driver.py", tag, other, str(int(crash_safe)), mode, str(n)],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return int(out.split()[-1])


def func_ok(pset):
    return {"result_": f"{pset['run']}-{pset['i']}"}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("crash_safe", [False, True])
@pytest.mark.parametrize("mode", ["serial", "pool"])
def test_two_runs_at_once_keep_all_rows(workdir, crash_safe, mode):
    ps.run(func_ok, ps.pgrid(ps.plist("run", ["first"]), ps.plist("i", [0, 1])))
    procs = [start(workdir, "A", "B", crash_safe, mode), start(workdir, "B", "A", crash_safe, mode)]
    lengths = sorted(finish(proc) for proc in procs)
    assert lengths == [7, 12]  # the second to write returns the whole database

    df = ps.df_read("calc/database.pk")
    assert len(df) == 12
    expected = {("first", i) for i in range(2)} | {(t, i) for t in "AB" for i in range(5)}
    assert set(zip(df.run, df.i)) == expected
    assert all(r == f"{run}-{i}" for run, i, r in zip(df.run, df.i, df.result_))
    assert df._pset_id.nunique() == 12 and df._run_id.nunique() == 3
    assert df._pset_seq.tolist() == list(range(12))
    by_run = {run: set(df._run_seq[df.run == run]) for run in ("first", "A", "B")}
    assert by_run["first"] == {0} and {frozenset(by_run["A"]), frozenset(by_run["B"])} == {
        frozenset({1}),
        frozenset({2}),
    }
    hashes = [ps.pset_hash({"run": run, "i": i}) for run, i in zip(df.run, df.i)]
    assert df._pset_hash.tolist() == hashes
    assert sorted(os.listdir("calc")) == ["database.pk"]  # no journal left


@pytest.mark.timeout(90)
def test_live_runs_journal_is_not_taken_for_a_dead_one(workdir):
    """A crash_safe run still going: another run neither warns about its journal nor resumes it."""
    (workdir / "hold_L").touch()  # L stops at its pset i=2 until release_L exists
    proc = start(workdir, "L", "-", crash_safe=True, n=4)
    journal = workdir / "calc" / "journal"
    deadline = time.monotonic() + 60
    while len([f for d in journal.glob("*") for f in d.glob("*.pk")]) < 2:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "L did not persist 2 rows"
        time.sleep(0.01)

    # warnings are errors here: a warning about "crashed" runs would fail this
    df = ps.run(func_ok, ps.pgrid(ps.plist("run", ["M"]), ps.plist("i", [0, 1])))
    df = ps.run(func_ok, ps.pgrid(ps.plist("run", ["M"]), ps.plist("i", [2])), resume=True)
    assert df.run.tolist() == ["M", "M", "M"]
    assert len(list(journal.glob("*/*.pk"))) == 2  # L's rows are still there

    (workdir / "release_L").touch()
    assert finish(proc) == 7
    df = ps.df_read("calc/database.pk")
    assert df.run.tolist() == ["M"] * 3 + ["L"] * 4 and df.i.tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert df._pset_seq.tolist() == list(range(7)) and df._run_seq.tolist() == [0, 0, 1, 2, 2, 2, 2]
    assert not journal.exists()
