"""A worker process that dies, or func raising KeyboardInterrupt in one, stops the run at once
with an error naming the pset (poolsize, gpus, dask_client); crash_safe keeps the finished rows."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest

import runner.sweep as ps

HOW = ("exit", "kill", "interrupt")
EXPECTED = {
    "exit": "died with exit code 3",
    "kill": "died with exit code -9",
    "interrupt": "func raised KeyboardInterrupt",
}


def func_dies(pset):
    """Pset a=2 ends its worker: os._exit, SIGKILL (what the OOM killer sends), or Ctrl-C."""
    if pset["a"] == 2:
        if pset["how"] == "exit":
            os._exit(3)
        if pset["how"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise KeyboardInterrupt
    return {"r_": pset["a"] * 10}


def params(how: str, n: int = 5) -> list[dict]:
    return ps.pgrid(ps.plist("how", [how]), ps.plist("a", range(n)))


MODES = {"pool": {"poolsize": 2}, "gpus": {"gpus": [0, 1]}}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_worker_death_is_an_error_at_once(workdir, mode, how):
    with pytest.raises(ps.SweepError, match=EXPECTED[how]) as info:
        ps.run(func_dies, params(how), **MODES[mode])
    assert isinstance(info.value, RuntimeError)
    assert "_pset_id=" in str(info.value)
    assert mp.active_children() == []  # the other workers were stopped, not left behind
    assert not os.path.exists("calc/database.pk")  # as when func raises: nothing written


@pytest.mark.timeout(30)
@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("mode", ["pool", "gpus"])
def test_crash_safe_rows_finished_before_the_death_are_kept(workdir, mode, how):
    one_worker = {"pool": {"poolsize": 1}, "gpus": {"gpus": [0]}}[mode]
    with pytest.raises(ps.SweepError, match=EXPECTED[how]):
        ps.run(func_dies, params(how), crash_safe=True, **one_worker)
    called = []

    def func(pset):
        called.append(pset["a"])
        return {"r_": pset["a"] * 10}

    df = ps.run(func, params(how), resume=True)
    assert called == [2, 3, 4]  # 0 and 1 had finished: their rows came from the journal
    assert df.a.tolist() == [0, 1, 2, 3, 4] and df.r_.tolist() == [0, 10, 20, 30, 40]
    assert not os.path.exists("calc/journal")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("n, poolsize", [(5, 2), (40, 1)])  # 1 and 10 psets per chunk
def test_capture_failures_records_a_death_and_goes_on(workdir, n, poolsize):
    df = ps.run(func_dies, params("kill", n), poolsize=poolsize, capture_failures=True, save=False)
    assert df.a.tolist() == list(range(n))
    assert df._failed.tolist() == [a == 2 for a in range(n)]
    assert "died with exit code -9" in df._exc_txt.values[2]
    assert df._pset_id.values[2] in df._exc_txt.values[2]  # the pset that was running is named
    assert [r for a, r in zip(df.a, df.r_) if a != 2] == [a * 10 for a in range(n) if a != 2]


def test_poolsize_must_be_a_positive_number(workdir):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="poolsize must be a number of processes >= 1"):
            ps.run(func_dies, params("exit"), poolsize=bad)
    assert os.listdir(workdir) == []


@pytest.fixture
def dask_client():
    """A LocalCluster of 2 worker processes on 127.0.0.1 (random ports, no dashboard)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", HOW)
def test_dask_worker_death_is_an_error(workdir, dask_client, how):
    match = "func raised KeyboardInterrupt" if how == "interrupt" else "dask workers running"
    with pytest.raises(ps.SweepError, match=match) as info:
        ps.run(func_dies, params(how), dask_client=dask_client, crash_safe=True)
    assert "_pset_id=" in str(info.value)
    assert not os.path.exists("calc/database.pk")
    called = []

    def func(pset):
        called.append(pset["a"])
        return {"r_": pset["a"] * 10}

    df = ps.run(func, params(how), resume=True)  # rows that had finished come from the journal
    assert 2 in called and sorted(df.a) == [0, 1, 2, 3, 4]  # no pset twice: recovered ones
    assert sorted(df.r_) == [0, 10, 20, 30, 40]


@pytest.mark.timeout(30)
def test_crash_safe_run_that_failed_before_any_row_leaves_no_journal(workdir):
    with pytest.raises(ps.SweepError, match="exit code 3"):
        ps.run(func_dies, params("exit", 3)[2:], poolsize=1, crash_safe=True)
    assert os.listdir("calc") == []


CTRL_C_DRIVER = """
import os, threading
import runner.sweep as ps

def func(pset):
    open(f"started_{pset['a']}", "w").close()
    threading.Event().wait()  # until Ctrl-C

if __name__ == "__main__":
    ps.run(func, ps.plist("a", range(4)), poolsize=2, crash_safe=True)
"""


@pytest.mark.timeout(30)
def test_ctrl_c_stops_the_pool_and_its_workers(workdir):
    """SIGINT to the process group, as Ctrl-C in a terminal sends: the run ends at once and no
    worker is left behind."""
    (workdir / "driver.py").write_text(CTRL_C_DRIVER)
    proc = subprocess.Popen(
        [sys.executable, "driver.py"],
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not ((workdir / "started_0").exists() and (workdir / "started_1").exists()):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=20)[1]
    assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in err
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the workers were stopped and reaped before the driver exited
    assert os.listdir("calc") == []  # no rows had finished: no journal kept


def func_unpicklable(pset):
    return {"r_": (lambda: 1) if pset["a"] == 2 else pset["a"]}


@pytest.mark.timeout(30)
def test_a_result_that_cannot_be_sent_back_is_an_error(workdir):
    with pytest.raises(TypeError, match="what func returns must be picklable"):
        ps.run(func_unpicklable, ps.plist("a", range(5)), poolsize=1)
    df = ps.run(func_unpicklable, ps.plist("a", range(9)), poolsize=1, capture_failures=True)
    assert df._failed.tolist() == [a == 2 for a in range(9)]
    assert df.r_.tolist()[3:] == list(range(3, 9))
