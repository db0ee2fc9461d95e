"""capture_failures=True: a failing pset becomes a row (_failed, _exc_txt) and the run goes on."""

from __future__ import annotations

import os

import pandas as pd
import pytest

import runner.sweep as ps


def func(pset):
    print(f"start {pset['a']}")
    if pset["a"] == 2:
        raise ValueError(f"a={pset['a']} is bad")
    if pset["a"] == 3:
        return ["not", "a", "dict"]
    return {"result_": 10.0 / pset["a"]}


def test_without_capture_the_run_aborts(workdir):
    with pytest.raises(ValueError, match="a=2 is bad"):
        ps.run(func, ps.plist("a", [1, 2, 4]))
    assert not os.path.exists("calc")


def test_failures_are_rows(workdir, capsys):
    df = ps.run(func, ps.plist("a", [1, 2, 3, 4]), capture_failures=True)
    assert df.a.tolist() == [1, 2, 3, 4]
    assert list(df.columns)[-4:] == ["result_", "_failed", "_exc_txt", "_pset_runtime"]
    assert df._failed.tolist() == [False, True, True, False]
    assert all(type(v) is bool for v in df._failed)
    txt = df._exc_txt.values[1]
    assert txt.startswith("Traceback (most recent call last):") and "ValueError: a=2 is bad" in txt
    assert "in func" in txt
    assert "TypeError: func must return a dict" in df._exc_txt.values[2]
    assert df._exc_txt.values[0] is pd.NA and df._exc_txt.values[3] is pd.NA
    assert df.result_.values[1] is pd.NA and df.result_.values[3] == 2.5
    assert df._pset_hash.values[1] == ps.pset_hash({"a": 2})
    assert ps.df_read("calc/database.pk").equals(df)
    assert capsys.readouterr().err == ""  # nothing printed by us
    # the usual post-processing from psweep's manual
    assert df[~df._failed.astype(bool)].a.tolist() == [1, 4]


def test_failures_keep_their_logs(workdir):
    df = ps.run(func, ps.plist("a", [1, 2]), capture_failures=True, capture_logs="db+file")
    assert df._logs.tolist() == ["start 1\n", "start 2\n"]
    assert (workdir / "calc" / df._pset_id.values[1] / "logs.txt").read_text() == "start 2\n"


def test_failures_in_a_pool(workdir):
    df = ps.run(func, ps.plist("a", [1, 2, 4]), capture_failures=True, poolsize=2, save=False)
    assert df._failed.tolist() == [False, True, False]
    assert "ValueError: a=2 is bad" in df._exc_txt.values[1]


def test_failures_with_dask(workdir):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            df = ps.run(
                func, ps.plist("a", [2, 4]), capture_failures=True, dask_client=client, save=False
            )
    assert df._failed.tolist() == [True, False]


def test_keyboard_interrupt_is_not_captured(workdir):
    def interrupted(pset):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ps.run(interrupted, ps.plist("a", [1]), capture_failures=True)
