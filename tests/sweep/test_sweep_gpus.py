"""gpus=[...]: a spawned worker per slot with its CUDA_VISIBLE_DEVICES; rows in submission order."""

from __future__ import annotations

import os
import signal
import time

import pytest

import runner.sweep as ps
from runner.sweep.gpuslots import parse_gpu_slots

# Read when a worker imports this module to unpickle func: the slot must already be set.
IMPORT_TIME_ENV = (os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("CUDA_DEVICE_ORDER"))


def func_env(pset):
    time.sleep(0.01 * (6 - pset["a"]))  # earlier psets finish later
    return {
        "cvd_": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "order_": os.environ.get("CUDA_DEVICE_ORDER"),
        "import_env_": IMPORT_TIME_ENV,
        "pid_": os.getpid(),
    }


def func_fails(pset):
    if pset["a"] == 1:
        raise ZeroDivisionError(f"bad pset {pset['a']}")
    if pset["a"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies
    return {"cvd_": os.environ["CUDA_VISIBLE_DEVICES"]}


def test_parse_gpu_slots():
    assert parse_gpu_slots([0, 1, "2,3", " 4 , 5 ", "07", 0]) == ["0", "1", "2,3", "4,5", "7", "0"]
    for bad in ([], [-1], ["a"], ["1,"], [True], [1.0], ["1;2"]):
        with pytest.raises(ValueError, match="gpus"):
            parse_gpu_slots(bad)
    for bad in ("0,1", 0):
        with pytest.raises(TypeError, match="list of slots"):
            parse_gpu_slots(bad)


def test_each_slot_has_its_devices(workdir):
    before = dict(os.environ)
    df = ps.run(func_env, ps.plist("a", range(6)), gpus=[0, 1, "2,3"])
    assert dict(os.environ) == before
    assert df.a.tolist() == list(range(6))  # submission order
    assert set(df.cvd_) == {"0", "1", "2,3"}
    assert set(df.order_) == {"PCI_BUS_ID"}
    for cvd, import_env in zip(df.cvd_, df.import_env_):
        assert import_env == (cvd, "PCI_BUS_ID")
    by_pid = {}
    for pid, cvd in zip(df.pid_, df.cvd_):
        by_pid.setdefault(pid, set()).add(cvd)
    assert len(by_pid) == 3 and all(len(v) == 1 for v in by_pid.values())
    assert os.getpid() not in by_pid
    assert ps.df_read("calc/database.pk").equals(df)
    assert list(df.columns)[-1] == "_pset_runtime" and "_gpus" not in df.columns


def test_repeated_slot_runs_two_workers(workdir):
    df = ps.run(func_env, ps.plist("a", range(4)), gpus=[5, 5], save=False)
    assert set(df.cvd_) == {"5"} and df.pid_.nunique() == 2


def test_failure_in_func_is_raised_with_its_type(workdir):
    with pytest.raises(ZeroDivisionError, match="bad pset 1") as info:
        ps.run(func_fails, ps.plist("a", [0, 1]), gpus=[0])
    assert any("CUDA_VISIBLE_DEVICES=0" in note for note in info.value.__notes__)
    assert not os.path.exists("calc/database.pk")


def test_dead_worker_is_an_error(workdir):
    with pytest.raises(ps.SweepError, match="died with exit code -9"):
        ps.run(func_fails, ps.plist("a", [2]), gpus=[0])


def test_failures_captured_and_dead_worker_replaced(workdir):
    df = ps.run(func_fails, ps.plist("a", range(5)), gpus=[0, "1,2"], capture_failures=True)
    assert df.a.tolist() == list(range(5))
    assert df._failed.tolist() == [False, True, True, False, False]
    assert "ZeroDivisionError: bad pset 1" in df._exc_txt.values[1]
    assert "died with exit code -9" in df._exc_txt.values[2]
    assert df._exc_txt.values[0] is df.cvd_.values[1] is df.cvd_.values[2] is ps.FILL_VALUE
    assert set(df.cvd_.values[[0, 3, 4]]) <= {"0", "1,2"}


def test_func_must_be_picklable(workdir):
    with pytest.raises(TypeError, match="module level"):
        ps.run(lambda pset: {}, ps.plist("a", [1]), gpus=[0])


def test_gpus_with_poolsize_is_an_error(workdir):
    with pytest.raises(ValueError, match="poolsize and gpus"):
        ps.run(func_env, ps.plist("a", [1]), gpus=[0], poolsize=2)
