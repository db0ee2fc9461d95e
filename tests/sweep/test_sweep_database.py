"""Database helpers: read/write, JSON, printing, filtering, extracting, updating, checking."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

import runner.sweep as ps


def func_a(pset):
    return {"result_": pset["a"] * 10.0}


@pytest.fixture
def db(workdir):
    """A two-run database on disk (calc/database.pk) and its DataFrame."""
    ps.run(func_a, ps.plist("a", [1, 2, 3]))
    return ps.run(func_a, ps.plist("a", [4]))


def test_constants():
    assert ps.CALC_DIR == "calc"
    assert ps.DATABASE_BASENAME == "database.pk"
    assert ps.FILL_VALUE is pd.NA
    assert isinstance(ps.__version__, str) and ps.__version__


def test_df_write_read_pickle_roundtrip(tmp_path):
    df = pd.DataFrame(
        {"a": [1, 2], "b": ["x", None], "c": [[1, 2], {"k": 3}], "d": [np.int64(4), pd.NA]},
        dtype=object,
    )
    fn = str(tmp_path / "sub" / "db.pk")
    ps.df_write(fn, df)
    back = ps.df_read(fn)
    pd.testing.assert_frame_equal(df, back)
    assert type(back.d.values[0]) is np.int64
    assert os.listdir(tmp_path / "sub") == ["db.pk"]  # no temporary file left


@pytest.mark.parametrize("orient", ["records", "split", "index", "columns"])
def test_df_write_read_json(tmp_path, orient):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [0.1, 0.25]})
    fn = str(tmp_path / "db.json")
    ps.df_write(fn, df, fmt="json", orient=orient)
    back = ps.df_read(fn, fmt="json", orient=orient)
    pd.testing.assert_frame_equal(df, back, check_exact=False, check_dtype=False)


def test_df_write_read_unknown_fmt(tmp_path):
    with pytest.raises(ValueError, match="unknown fmt"):
        ps.df_write(str(tmp_path / "x"), pd.DataFrame(), fmt="csv")
    with pytest.raises(ValueError, match="unknown fmt"):
        ps.df_read(str(tmp_path / "x"), fmt="csv")


def test_df_to_json_defaults():
    df = pd.DataFrame(
        {"a": [1], "t": [pd.Timestamp("2023-01-20 19:54:09.5")], "x": [1 / 3]}, dtype=object
    )
    rec = json.loads(ps.df_to_json(df))
    assert rec == [{"a": 1, "t": rec[0]["t"], "x": pytest.approx(1 / 3, rel=1e-14)}]
    assert rec[0]["t"].startswith("2023-01-20T19:54:09")  # seconds; pandas < 3 adds "Z"
    assert rec[0]["x"] != 1 / 3  # double_precision=15
    assert set(json.loads(ps.df_to_json(df, orient="columns"))) == {"a", "t", "x"}


def test_df_print(capsys):
    df = pd.DataFrame({"b": [1, 2], "a": [3, 4], "_c": [5, 6]})
    ps.df_print(df)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["a", "b"] and out[1].split() == ["3", "1"]
    ps.df_print(df, prefix_cols=True)
    assert capsys.readouterr().out.splitlines()[0].split() == ["_c", "a", "b"]
    ps.df_print(df, index=True)
    assert capsys.readouterr().out.splitlines()[1].split() == ["0", "3", "1"]
    ps.df_print(df, cols=["b"])
    assert capsys.readouterr().out.splitlines()[0].split() == ["b"]
    ps.df_print(df, cols=["b"], prefix_cols=True)
    assert capsys.readouterr().out.splitlines()[0].split() == ["_c", "b"]
    ps.df_print(df, skip_cols=["a"])
    assert capsys.readouterr().out.splitlines()[0].split() == ["b"]
    with pytest.raises(ValueError, match="either cols or skip_cols"):
        ps.df_print(df, cols=["a"], skip_cols=["b"])
    with pytest.warns(DeprecationWarning, match="prefix_cols"):
        ps.df_print(df, special_cols=True)
    assert "_c" in capsys.readouterr().out


def test_df_filter_conds():
    df = pd.DataFrame({"a": np.arange(10), "b": np.arange(10) + 4})
    conds = [df.a > 3, df.b < 9, df.a % 2 == 0]
    ref = df[conds[0] & conds[1] & conds[2]]
    assert ref.equals(ps.df_filter_conds(df, conds))
    for conv in (lambda x: x, lambda x: x.to_numpy(), lambda x: x.to_list()):
        assert ref.equals(ps.df_filter_conds(df, map(conv, conds)))
    assert df[conds[0] | conds[1] | conds[2]].equals(ps.df_filter_conds(df, conds, op="or"))
    xor = np.logical_xor.reduce([c.to_numpy() for c in conds])
    assert df[xor].equals(ps.df_filter_conds(df, conds, op="xor"))
    assert df[conds[0]].equals(ps.df_filter_conds(df, conds[:1]))
    assert ps.df_filter_conds(df, []) is df
    with pytest.raises(ValueError, match="index 1 has length 3"):
        ps.df_filter_conds(df, [df.a > 1, [True] * 3])
    with pytest.raises(ValueError, match="op='nand'"):
        ps.df_filter_conds(df, conds, op="nand")


def test_filter_cols():
    cols = ["a", "_pset_id", "result_", "b", "_x_"]
    assert ps.filter_cols(cols) == ["a", "b"]
    assert (
        ps.filter_cols(cols, kind="pre")
        == ps.filter_cols(cols, kind="prefix")
        == ["_pset_id", "_x_"]
    )
    assert (
        ps.filter_cols(cols, kind="post")
        == ps.filter_cols(cols, kind="postfix")
        == ["result_", "_x_"]
    )
    with pytest.raises(ValueError, match="kind='nope'"):
        ps.filter_cols(cols, kind="nope")


def test_df_extract(db):
    dicts = ps.df_extract_dicts(db)
    assert len(dicts) == 4 and list(dicts[0]) == list(db.columns)
    assert ps.df_extract_params(db) == [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}]
    pset_id = db._pset_id.values[2]
    row = ps.df_extract_row(db, pset_id)
    assert row["a"] == 3 and row["result_"] == 30.0 and row["_pset_seq"] == 2
    assert ps.df_extract_row(db, pset_id, kind="post") == {"result_": 30.0}
    assert ps.df_extract_pset(db, pset_id) == {"a": 3}
    with pytest.raises(ValueError, match="selects 0 rows"):
        ps.df_extract_row(db, "nope")


def test_df_extract_py_types():
    df = pd.DataFrame({"a": [1, pd.NA]}, dtype=object)
    assert ps.df_extract_dicts(df)[1]["a"] is pd.NA
    assert ps.df_extract_dicts(df, py_types=True)[1]["a"] is None or pd.isna(
        ps.df_extract_dicts(df, py_types=True)[1]["a"]
    )


def test_df_update_pset_hash_and_cols(db):
    broken = db.copy()
    broken["_pset_hash"] = "x"
    fixed = ps.df_update_pset_hash(broken, copy=True)
    assert broken._pset_hash.tolist() == ["x"] * 4
    assert fixed._pset_hash.tolist() == [ps.pset_hash({"a": a}) for a in (1, 2, 3, 4)]
    grown = ps.df_update_pset_cols(db, pset_cols=["a", "b"], copy=True)
    assert "b" not in db.columns
    assert grown.b.tolist() == [pd.NA] * 4 and grown.b.dtype == object
    assert grown._pset_hash.tolist()[0] == ps.pset_hash({"a": 1, "b": pd.NA})
    filled = ps.df_update_pset_cols(db, pset_cols=["a", "b"], fill_value=-1, copy=True)
    assert filled.b.tolist() == [-1] * 4


def test_df_ensure_dtypes():
    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", None], "c": [np.int64(1), 2]})
    out = ps.df_ensure_dtypes(df)
    assert (out.dtypes == "O").all()
    assert out.a.values[1] is pd.NA and out.b.values[1] is pd.NA
    assert ps.df_ensure_dtypes(df, fill_value=0).b.tolist() == ["x", 0]


def test_check_calc_dir(db):
    ids = db._pset_id.tolist()
    for pset_id in ids[:3]:
        os.makedirs(f"calc/{pset_id}")
    stray = "00000000-1111-2222-3333-444444444444"
    os.makedirs(f"calc/{stray}")
    got = ps.check_calc_dir("calc", db)
    assert got == {"db_not_disk": {ids[3]}, "disk_not_db": {stray}}
