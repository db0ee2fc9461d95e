"""run(): columns, book-keeping, appending, skip_dups, save, simulate, backup, logs, pools."""

from __future__ import annotations

import os
import pickle
import platform
import re
import time

import pandas as pd
import pytest

import runner.sweep as ps

BOOK_KEEPING = [
    "_pset_hash",
    "_pset_id",
    "_run_seq",
    "_pset_seq",
    "_run_id",
    "_calc_dir",
    "_time_utc",
    "_exec_host",
]
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def func_a(pset):
    return {"result_": pset["a"] * 10.0}


def func_slow_first(pset):
    """Earlier psets take longer, so a pool finishes them last."""
    time.sleep(0.02 * (4 - pset["a"]))
    return {"result_": pset["a"] * 10.0, "pid_": os.getpid()}


def test_run_columns_and_book_keeping(workdir):
    df = ps.run(func_a, ps.pgrid(ps.plist("a", [1, 2, 3]), ps.plist("b", ["x", "y"])))
    assert list(df.columns) == ["a", "b", *BOOK_KEEPING, "result_", "_pset_runtime"]
    assert (df.dtypes == "O").all()
    assert isinstance(df.index, pd.RangeIndex) and df.index.tolist() == list(range(6))
    assert df._pset_seq.tolist() == list(range(6)) and df._run_seq.tolist() == [0] * 6
    assert all(type(v) is int for v in df._pset_seq) and all(type(v) is int for v in df._run_seq)
    assert df._run_id.nunique() == 1 and df._pset_id.nunique() == 6
    assert all(UUID4.match(v) for v in [*df._pset_id, df._run_id.values[0]])
    assert set(df._calc_dir) == {"calc"}
    assert all(isinstance(t, pd.Timestamp) for t in df._time_utc)
    assert list(df._time_utc) == sorted(df._time_utc)
    assert set(df._exec_host) == {platform.node()}
    assert all(isinstance(t, float) and t >= 0 for t in df._pset_runtime)
    assert df._pset_hash.tolist()[:2] == [
        ps.pset_hash({"a": 1, "b": "x"}),
        ps.pset_hash({"a": 1, "b": "y"}),
    ]
    disk = ps.df_read("calc/database.pk")
    assert disk.equals(df)
    assert sorted(os.listdir("calc")) == ["database.pk"]


def test_func_sees_params_and_book_keeping_and_row_is_update(workdir):
    seen = []

    def func(pset):
        seen.append(list(pset))
        pset["a"] = 100  # the row is pset.update(result): changes to pset show
        return {"b": "from func", "c_": 1}

    df = ps.run(func, [{"a": 1, "b": "p"}], save=False)
    assert seen == [["a", "b", *BOOK_KEEPING]]
    assert df.a.tolist() == [100] and df.b.tolist() == ["from func"] and df.c_.tolist() == [1]
    assert df._pset_hash.tolist() == [ps.pset_hash({"a": 1, "b": "p"})]


@pytest.mark.parametrize("bad", [None, [("a", 1)], 3])
def test_func_must_return_a_mapping(workdir, bad):
    with pytest.raises(TypeError, match="func must return a dict"):
        ps.run(lambda pset: bad, [{"a": 1}])
    assert not os.path.exists("calc")


def test_second_run_appends_and_recomputes_hashes(workdir):
    def func(pset):
        return {"result": pset["a"] * 10.0}  # no postfix "_": psweep hashes it on the next run

    df1 = ps.run(func, ps.plist("a", [1, 2]))
    assert df1._pset_hash.tolist() == [ps.pset_hash({"a": 1}), ps.pset_hash({"a": 2})]
    df2 = ps.run(func, ps.plist("a", [1, 2]))
    assert len(df2) == 4 and df2._run_id.nunique() == 2
    assert df2._run_seq.tolist() == [0, 0, 1, 1] and df2._pset_seq.tolist() == [0, 1, 2, 3]
    assert df2._pset_hash.tolist() == [
        ps.pset_hash({"a": 1, "result": 10.0}),
        ps.pset_hash({"a": 2, "result": 20.0}),
        ps.pset_hash({"a": 1}),
        ps.pset_hash({"a": 2}),
    ]
    assert df2._pset_id.tolist()[:2] == df1._pset_id.tolist()


def test_new_param_columns_are_back_filled(workdir):
    ps.run(func_a, ps.plist("a", [1, 2]))
    df = ps.run(func_a, [{"a": 3, "b": "new"}])
    assert list(df.columns) == ["a", *BOOK_KEEPING, "result_", "_pset_runtime", "b"]
    assert df.b.tolist() == [pd.NA, pd.NA, "new"]
    assert df._pset_hash.tolist()[0] == ps.pset_hash({"a": 1, "b": pd.NA})
    df = ps.run(func_a, [{"a": 4, "c": 1}], fill_value="missing")
    assert df.c.tolist() == ["missing"] * 3 + [1]
    assert df.b.tolist() == ["missing", "missing", "new", "missing"]  # every NA is fill_value now


def test_old_params_missing_in_new_psets(workdir):
    ps.run(func_a, [{"a": 1, "b": 2}])
    df = ps.run(func_a, [{"a": 2}])
    assert df.b.tolist() == [2, pd.NA]
    assert df._pset_hash.tolist() == [ps.pset_hash({"a": 1, "b": 2}), ps.pset_hash({"a": 2})]


@pytest.mark.parametrize("use_disk", [True, False])
def test_skip_dups(workdir, use_disk):
    params = ps.plist("a", [1, 2, 3, 4])
    df1 = ps.run(func_a, params, save=use_disk)
    df2 = ps.run(func_a, params, df=None if use_disk else df1, save=use_disk, skip_dups=True)
    assert df2.equals(df1)
    params = ps.plist("a", [1, 2, 88, 99])
    df3 = ps.run(func_a, params, df=None if use_disk else df2, save=use_disk, skip_dups=True)
    assert len(df3) == 6 and df3._run_id.nunique() == 2
    assert df3._pset_hash.tolist() == df1._pset_hash.tolist() + [
        ps.pset_hash({"a": 88}),
        ps.pset_hash({"a": 99}),
    ]
    assert df3._pset_seq.tolist()[-2:] == [4, 5]
    assert os.path.exists("calc") == use_disk


def test_save_false_writes_nothing(workdir):
    df1 = ps.run(func_a, ps.plist("a", [1, 2]), save=False)
    df2 = ps.run(func_a, ps.plist("a", [3]), save=False, df=df1)
    assert os.listdir(workdir) == []
    assert len(df2) == 3 and df2._run_seq.tolist() == [0, 0, 1]
    assert len(df1) == 2 and "_pset_hash" in df1  # the passed df is not changed
    ps.run(func_a, ps.plist("a", [1]), save=True)
    assert os.listdir(workdir) == ["calc"]


def test_calc_dir_and_database_basename(workdir):
    df = ps.run(func_a, ps.plist("a", [1]), calc_dir="out/study", database_basename="db.pk")
    assert os.listdir("out/study") == ["db.pk"]
    assert df._calc_dir.tolist() == ["out/study"]
    assert (
        ps.run(func_a, ps.plist("a", [2]), calc_dir="out/study", database_basename="db.pk").shape[0]
        == 2
    )


def test_simulate(workdir):
    calls = []

    def func(pset):
        calls.append(pset["a"])
        return func_a(pset)

    with pytest.warns(UserWarning, match="simulate: calc/database.pk not found"):
        ps.run(func, ps.plist("a", [5]), simulate=True)
    assert calls == [] and not os.path.exists("calc")
    df = ps.run(func, ps.plist("a", [1, 2, 3, 4]))
    os.makedirs("calc/some_pset_dir")
    df_sim = ps.run(func, ps.plist("a", [88, 99]), simulate=True)
    assert calls == [1, 2, 3, 4]
    assert sorted(os.listdir("calc.simulate")) == ["database.pk"]
    assert ps.df_read("calc.simulate/database.pk").equals(df_sim)
    assert ps.df_read("calc/database.pk").equals(df)
    assert len(df_sim) == 6 and df_sim.iloc[:4][["a", "_pset_id"]].equals(df[["a", "_pset_id"]])
    assert df_sim.result_.tolist()[-2:] == [pd.NA, pd.NA]
    assert set(df_sim._calc_dir.tolist()[-2:]) == {"calc.simulate"}
    # a second simulate starts from a fresh copy
    assert len(ps.run(func, ps.plist("a", [7]), simulate=True)) == 5


def test_backup(workdir):
    def func(pset):
        pset_dir = os.path.join(pset["_calc_dir"], pset["_pset_id"])
        ps.makedirs(pset_dir)
        ps.file_write(os.path.join(pset_dir, "foo"), pset["_pset_id"])
        return func_a(pset)

    ps.run(func, ps.plist("a", [1]), backup=True)  # empty database: nothing to back up
    assert os.listdir(workdir) == ["calc"]
    df0 = ps.run(func, ps.plist("a", [2, 3]))
    os.symlink("database.pk", "calc/link_to_db")
    stamp = df0._time_utc.max().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expected = f"calc.bak_{stamp}_run_id_{df0._run_id.values[-1]}"
    assert re.match(
        r"^calc\.bak_\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z_run_id_[0-9a-f-]{36}$", expected
    )
    df1 = ps.run(func, ps.plist("a", [4]), backup=True)
    assert sorted(os.listdir(workdir)) == ["calc", expected]
    bak = workdir / expected
    assert os.path.islink(bak / "link_to_db") and os.readlink(bak / "link_to_db") == "database.pk"
    assert ps.df_read(str(bak / "database.pk")).equals(df0)
    for pset_id in df0._pset_id:
        assert (bak / pset_id / "foo").read_text() == pset_id
    assert not (bak / df1._pset_id.values[-1]).exists()
    # same database state again: the destination exists
    os.replace(expected, "elsewhere")
    ps.df_write("calc/database.pk", df0)
    os.replace("elsewhere", expected)
    with pytest.raises(FileExistsError, match="backup destination"):
        ps.run(func, ps.plist("a", [5]), backup=True)


def test_tmpsave(workdir):
    df = ps.run(func_a, ps.plist("a", [1, 2]), tmpsave=True)
    run_id = df._run_id.values[0]
    for row in ps.df_extract_dicts(df):
        saved = ps.pickle_read(f"calc/tmpsave/{run_id}/{row['_pset_id']}.pk")
        assert saved == row
    assert sorted(os.listdir("calc")) == ["database.pk", "tmpsave"]
    ps.run(func_a, ps.plist("a", [3]), tmpsave=True, save=False, calc_dir="other")
    assert os.listdir("other") == ["tmpsave"]


def func_prints(pset):
    print(f"out {pset['a']}")
    import sys

    print(f"err {pset['a']}", file=sys.stderr)
    return {}


@pytest.mark.parametrize("mode", ["file", "db", "db+file"])
def test_capture_logs(workdir, capsys, mode):
    df = ps.run(func_prints, ps.plist("a", [1, 2]), capture_logs=mode)
    assert capsys.readouterr() == ("", "")
    for a, pset_id in zip(df.a, df._pset_id):
        fn = workdir / "calc" / pset_id / "logs.txt"
        assert fn.exists() == ("file" in mode)
        if "file" in mode:
            assert fn.read_text() == f"out {a}\nerr {a}\n"
    if "db" in mode:
        assert df._logs.tolist() == ["out 1\nerr 1\n", "out 2\nerr 2\n"]
        assert list(df.columns)[-2:] == ["_logs", "_pset_runtime"]
    else:
        assert "_logs" not in df.columns


def test_capture_logs_invalid(workdir):
    with pytest.raises(ValueError, match="capture_logs='stdout'"):
        ps.run(func_prints, ps.plist("a", [1]), capture_logs="stdout")
    assert os.listdir(workdir) == []


def test_capture_logs_file_with_save_false(workdir):
    df = ps.run(func_prints, ps.plist("a", [1]), capture_logs="file", save=False)
    assert os.listdir("calc") == [df._pset_id.values[0]]


def test_verbose(workdir, capsys):
    ps.run(func_a, ps.plist("a", [7]), verbose=True, save=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["a"]  # prefix columns hidden, as df_print does
    assert lines[1].startswith(str(pd.Timestamp.now())[:4]) and lines[1].split()[-1] == "7"
    ps.run(func_a, ps.plist("a", [7]), verbose=["a"], save=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["a"] and lines[1].split()[-1] == "7"


def test_empty_params(workdir):
    df = ps.run(func_a, [])
    assert len(df) == 0 and os.path.exists("calc/database.pk")
    assert len(ps.run(func_a, ps.plist("a", [1]))) == 1


def _strip_volatile(df):
    return df.drop(columns=["_pset_id", "_run_id", "_time_utc", "_pset_runtime", "pid_"])


def test_poolsize_matches_serial_in_submission_order(workdir):
    params = ps.plist("a", [1, 2, 3])
    serial = ps.run(func_slow_first, params, save=False)
    pooled = ps.run(func_slow_first, params, save=False, poolsize=3)
    pd.testing.assert_frame_equal(_strip_volatile(serial), _strip_volatile(pooled))
    assert pooled.a.tolist() == [1, 2, 3]
    assert os.getpid() not in set(pooled.pid_)  # ran in pool processes
    assert list(pooled.columns) == list(serial.columns)


def test_dask_matches_serial_in_submission_order(workdir):
    from dask.distributed import Client, LocalCluster

    params = ps.plist("a", [1, 2, 3])
    serial = ps.run(func_slow_first, params, save=False)
    with LocalCluster(
        n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None
    ) as cluster:
        with Client(cluster) as client:
            df = ps.run(func_slow_first, params, dask_client=client)
    pd.testing.assert_frame_equal(_strip_volatile(serial), _strip_volatile(df))
    assert ps.df_read("calc/database.pk").equals(df)


def test_pool_and_dask_together_is_an_error(workdir):
    with pytest.raises(ValueError, match="either poolsize, dask_client or gpus") as info:
        ps.run(func_a, ps.plist("a", [1]), poolsize=2, dask_client=object())
    assert isinstance(info.value, AssertionError)
    assert os.listdir(workdir) == []


def test_database_is_plain_pickle(workdir):
    ps.run(func_a, ps.plist("a", [1]))
    with open("calc/database.pk", "rb") as fd:
        df = pickle.load(fd)
    assert type(df) is pd.DataFrame
