"""Compatibility with the real psweep 0.16 (installed by the psweep016 fixture, see conftest)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import runner.sweep as ps

BOOK_IDS = ["_pset_id", "_run_id", "_time_utc", "_pset_runtime"]


def func(pset):
    return {"result_": pset["a"] * 10.0, "label_": f"{pset['b']}-{pset['a']}"}


def params_1():
    # ints, strings, floats with a missing value: types both wash the same way
    return ps.pgrid(ps.plist("a", [1, 2]), ps.plist("b", ["x", "y"]), ps.plist("c", [0.5, None]))


def params_2():
    # new column d; a number, because psweep on pandas 3 back-fills text columns with nan, not NA
    return [{"a": 3, "b": "z", "c": 1.5, "d": 7}, {"a": 1, "b": "x", "c": 0.5, "d": 7}]


def same_values(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal columns and values, ignoring ids, times and the calc dir."""
    assert list(left.columns) == list(right.columns)
    drop = BOOK_IDS + ["_calc_dir"]
    pd.testing.assert_frame_equal(
        left.drop(columns=drop), right.drop(columns=drop), check_column_type=False
    )


HASH_VALUES = [
    1,
    1.0,
    -7,
    2.5,
    "s",
    "",
    True,
    None,
    pd.NA,
    np.nan,
    np.int64(1),
    np.int32(3),
    np.float64(2.5),
    np.float32(1.5),
    np.bool_(True),
    [1, 2],
    (1, "a"),
    {"k": [1, 2]},
    pd.Timestamp("2020-01-01"),
]


@pytest.mark.parametrize(
    "value", HASH_VALUES, ids=[f"{type(v).__name__}-{v!r}" for v in HASH_VALUES]
)
def test_pset_hash_same_as_psweep(psweep016, value):
    pset = {"a": value, "b": 2, "_pset_id": "x", "res_": 1}
    assert ps.pset_hash(pset) == psweep016.pset_hash(pset)
    assert ps.pset_hash(pset, skip_prefix_cols=False) == psweep016.pset_hash(
        pset, skip_prefix_cols=False
    )


def test_run_hashes_same_as_psweep(psweep016, workdir):
    theirs = psweep016.run(func, params_1(), calc_dir="theirs")
    ours = ps.run(func, params_1(), calc_dir="ours")
    assert ours._pset_hash.tolist() == theirs._pset_hash.tolist()
    same_values(ours, theirs)
    assert ours.c.tolist()[1] is pd.NA and theirs.c.tolist()[1] is pd.NA


def test_psweep_database_read_and_extended_by_us(psweep016, workdir):
    psweep016.run(func, params_1())
    shutil.copytree("calc", "calc_theirs")
    theirs_db = ps.df_read("calc/database.pk")
    assert [
        ps.pset_hash(row) for row in ps.df_extract_dicts(theirs_db)
    ] == theirs_db._pset_hash.tolist()

    ours = ps.run(func, params_2(), skip_dups=True)
    theirs = psweep016.run(func, params_2(), calc_dir="calc_theirs", skip_dups=True)
    assert len(ours) == len(theirs) == 10  # new column d: no old row is a duplicate
    same_values(ours, theirs)
    assert ours._pset_id.tolist()[:8] == theirs_db._pset_id.tolist()
    assert ours._pset_hash.tolist() == theirs._pset_hash.tolist()


def test_our_database_read_and_extended_by_psweep(psweep016, workdir):
    ours = ps.run(func, params_1())
    read = psweep016.df_read("calc/database.pk")
    assert list(read.columns) == list(ours.columns)
    assert (read.dtypes == "O").all()
    assert isinstance(read.index, pd.RangeIndex) and read.index.equals(pd.RangeIndex(8))
    rehashed = psweep016.df_update_pset_hash(read.copy())
    assert rehashed._pset_hash.tolist() == ours._pset_hash.tolist()

    shutil.copytree("calc", "calc_ours")
    theirs = psweep016.run(func, params_2(), skip_dups=True)
    ours2 = ps.run(func, params_2(), calc_dir="calc_ours", skip_dups=True)
    same_values(theirs, ours2)
    assert theirs._pset_id.tolist()[:8] == ours._pset_id.tolist()
    assert theirs._run_seq.tolist() == ours2._run_seq.tolist() == [0] * 8 + [1, 1]


def test_missing_text_is_fill_value_where_psweep_on_pandas3_gives_nan(psweep016, workdir):
    """psweep 0.16's washing infers pandas 3's str dtype for text, whose missing value is nan."""
    params = [{"a": 1, "b": "x"}, {"a": 2}]
    ours = ps.run(lambda pset: {}, params, save=False)
    theirs = psweep016.run(lambda pset: {}, params, save=False)
    assert ours.b.tolist()[1] is pd.NA
    assert ours._pset_hash.tolist()[1] == ps.pset_hash({"a": 2, "b": pd.NA})
    if int(pd.__version__.split(".")[0]) >= 3:
        assert theirs.b.tolist()[1] != theirs.b.tolist()[1]  # nan
    else:
        assert theirs._pset_hash.tolist() == ours._pset_hash.tolist()


def test_numpy_scalars_kept_where_psweep_converts(psweep016, workdir):
    """psweep's pandas washing turns np.int64 columns into ints; the spec keeps the numpy type."""
    params = [{"a": np.int64(1)}, {"a": np.int64(2)}]
    ours = ps.run(lambda pset: {}, params, save=False)
    theirs = psweep016.run(lambda pset: {}, params, save=False)
    assert ours._pset_hash.tolist() == [ps.pset_hash({"a": np.int64(v)}) for v in (1, 2)]
    assert theirs._pset_hash.tolist() == [ps.pset_hash({"a": v}) for v in (1, 2)]
    assert [type(v) for v in ours.a] == [np.int64, np.int64]


def test_params_builders_same_as_psweep(psweep016):
    a, b, c = ps.plist("a", [1, 2]), ps.plist("b", ["x", "y", "z"]), ps.plist("c", [None, 1.5])
    assert ps.pgrid(a, b, c) == psweep016.pgrid(a, b, c)
    assert ps.pgrid([zip(a, c), b]) == psweep016.pgrid([zip(a, c), b])
    const = {"a": 1, "b": "x", "c": 0}
    assert ps.stargrid(const, [a, b], vary_labels=["a", "b"]) == psweep016.stargrid(
        const, [a, b], vary_labels=["a", "b"]
    )
    assert ps.stargrid(const, [a, b], skip_dups=False) == psweep016.stargrid(
        const, [a, b], skip_dups=False
    )
    assert (ps.intspace(0, 7, 9) == psweep016.intspace(0, 7, 9)).all()
    np.testing.assert_array_equal(
        ps.logspace(0.1, 3, 7, offset=1), psweep016.logspace(0.1, 3, 7, offset=1)
    )
    nested = {"a": 1, "b": {"c": 2, "d": {23: 42}}}
    assert ps.flatten_dict(nested) == psweep016.flatten_dict(nested)
    assert list(ps.flatten([1, [2, (3, "ab")], {"k": 1}])) == list(
        psweep016.flatten([1, [2, (3, "ab")], {"k": 1}])
    )
    assert ps.merge_dicts({"a": 1}, {"a": 2}) == psweep016.merge_dicts({"a": 1}, {"a": 2})


def test_database_helpers_same_as_psweep(psweep016, workdir, capsys):
    df = ps.run(func, params_1())
    assert ps.df_to_json(df) == psweep016.df_to_json(df)
    assert ps.df_to_json(df, orient="split") == psweep016.df_to_json(df, orient="split")
    for kwds in (
        {},
        {"cols": ["a", "c"], "prefix_cols": True},
        {"skip_cols": ["b"], "index": True},
    ):
        ps.df_print(df, **kwds)
        ours_out = capsys.readouterr().out
        psweep016.df_print(df, **kwds)
        assert ours_out == capsys.readouterr().out
    conds = [df.a == 1, df.b == "x"]
    assert ps.df_filter_conds(df, conds, op="or").equals(
        psweep016.df_filter_conds(df, conds, op="or")
    )
    assert ps.df_extract_params(df) == psweep016.df_extract_params(df)
    pset_id = df._pset_id.values[3]
    assert ps.df_extract_pset(df, pset_id) == psweep016.df_extract_pset(df, pset_id)
    for pset_id in df._pset_id.values[:2]:
        os.makedirs(f"calc/{pset_id}")
    assert ps.check_calc_dir("calc", df) == psweep016.check_calc_dir("calc", df)
    ps.df_write("ours.json", df, fmt="json")
    psweep016.df_write("theirs.json", df, fmt="json")
    assert Path("ours.json").read_text() == Path("theirs.json").read_text()


@pytest.mark.parametrize("mode", ["jinja", "dollar"])
def test_prep_batch_same_as_psweep(psweep016, workdir, make_templates, mode):
    run_py = "a={{ a }} id={{ _pset_id }}\n" if mode == "jinja" else "a=$a id=$_pset_id\n"
    job = (
        "#SBATCH -J j_{{ _pset_seq }}\nsh run.py\n"
        if mode == "jinja"
        else "#SBATCH -J j_$_pset_seq\nsh run.py\n"
    )
    make_templates({"run.py": run_py}, {"cluster": (job, "sbatch"), "local": (job, "sh")})
    for name, mod in (("ours", ps), ("theirs", psweep016)):
        mod.prep_batch(ps.plist("a", [1, 2]), calc_dir=name, template_mode=mode, write_pset=True)
        mod.prep_batch(ps.plist("a", [3]), calc_dir=name, template_mode=mode)

    def normalized(calc_dir):
        df = ps.df_read(f"{calc_dir}/database.pk")
        out = {}
        for seq, pset_id in zip(df._pset_seq, df._pset_id):
            for fname in sorted(os.listdir(f"{calc_dir}/{pset_id}")):
                if fname != "pset.pk":
                    out[f"{seq}/{fname}"] = (
                        Path(calc_dir, pset_id, fname).read_text().replace(pset_id, "ID")
                    )
        for fname in ("run_cluster.sh", "run_local.sh"):
            txt = Path(calc_dir, fname).read_text()
            for seq, pset_id in zip(df._pset_seq, df._pset_id):
                txt = txt.replace(pset_id, f"ID{seq}")
            out[fname] = txt
        return out

    assert normalized("ours") == normalized("theirs")


PANDAS2_WRITE = """
import psweep as ps, pandas as pd
assert pd.__version__.startswith("2."), pd.__version__
def func(pset):
    return {"result_": pset["a"] * 10.0, "label_": f"{pset['b']}-{pset['a']}"}
ps.run(func, ps.pgrid(ps.plist("a", [1, 2]), ps.plist("b", ["x", "y"]), ps.plist("c", [0.5, 1.5])))
"""

PANDAS2_READ = """
import json, psweep as ps, pandas as pd
def func(pset):
    return {"result_": 0.0, "label_": "p2"}
df = ps.df_read("calc/database.pk")
out = dict(columns=list(df.columns), dtypes=sorted(set(map(str, df.dtypes))),
           index=type(df.index).__name__,
           rehash=ps.df_update_pset_hash(df.copy())._pset_hash.tolist(), c=[str(v) for v in df.c])
df = ps.run(func, [{"a": 9, "b": "q", "c": 0.5}])
out["n"] = len(df)
print(json.dumps(out))
"""


def test_databases_cross_pandas_major_versions(psweep016_pandas2, workdir):
    """psweep on pandas 2 writes, we (this env's pandas) extend, psweep on pandas 2 extends."""
    import json

    psweep016_pandas2(PANDAS2_WRITE, cwd=workdir)
    theirs = ps.df_read("calc/database.pk")
    assert len(theirs) == 8 and (theirs.dtypes == "O").all()
    assert [ps.pset_hash(row) for row in ps.df_extract_dicts(theirs)] == theirs._pset_hash.tolist()
    ours = ps.run(func, [{"a": 3, "b": "z", "c": None}], skip_dups=True)
    assert ours._pset_hash.tolist()[:8] == theirs._pset_hash.tolist()
    assert ours.columns.dtype == object  # pandas 2 cannot unpickle a pandas-3 str column index

    out = json.loads(psweep016_pandas2(PANDAS2_READ, cwd=workdir))
    assert (
        out["columns"] == list(ours.columns)
        and out["dtypes"] == ["object"]
        and out["index"] == "RangeIndex"
    )
    assert out["rehash"][:8] == ours._pset_hash.tolist()[:8]
    assert out["c"][-1] == "<NA>" and out["n"] == 10


SIGNATURE_NAMES = [
    "plist",
    "pgrid",
    "itr2params",
    "stargrid",
    "merge_dicts",
    "filter_params_unique",
    "filter_params_dup_hash",
    "intspace",
    "logspace",
    "run",
    "df_read",
    "df_write",
    "df_to_json",
    "df_print",
    "df_filter_conds",
    "filter_cols",
    "df_extract_dicts",
    "df_extract_params",
    "df_extract_row",
    "df_extract_pset",
    "df_update_pset_hash",
    "df_update_pset_cols",
    "df_ensure_dtypes",
    "check_calc_dir",
    "prep_batch",
    "FileTemplate",
    "Machine",
    "gather_calc_templates",
    "gather_machines",
    "system",
    "makedirs",
    "fullpath",
    "itr",
    "is_seq",
    "flatten",
    "flatten_dict",
    "file_write",
    "file_read",
    "pickle_write",
    "pickle_read",
    "json_write",
    "json_read",
    "get_uuid",
    "get_many_uuids",
    "git_clean",
    "in_git_repo",
    "git_enter",
    "git_exit",
    "func_wrapper",
    "capture_logs_wrapper",
]


def _params(obj):
    import inspect

    sig = inspect.signature(obj)
    # () and [] as defaults behave the same (we avoid mutable defaults)
    return [
        (p.name, p.kind, "[]" if p.default == () else repr(p.default))
        for p in sig.parameters.values()
    ]


@pytest.mark.parametrize("name", SIGNATURE_NAMES)
def test_signatures_accept_psweep_calls(psweep016, name):
    """Every parameter of psweep's function exists here, of the same kind and default, in order."""
    import inspect

    theirs = _params(getattr(psweep016, name))
    ours = _params(getattr(ps, name))
    if (
        name == "pgrid"
    ):  # psweep: pgrid(plists) wrapped by @itr, called as pgrid(a, b) or pgrid([a, b])
        assert ours == [("plists", inspect.Parameter.VAR_POSITIONAL, repr(inspect.Parameter.empty))]
        return
    assert ours[: len(theirs)] == theirs
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, kind, _ in ours[len(theirs) :])


def test_constants_same_as_psweep(psweep016):
    for name in (
        "CALC_DIR",
        "DATABASE_BASENAME",
        "PSET_HASH_ALG",
        "PANDAS_DEFAULT_ORIENT",
        "PANDAS_TIME_UNIT",
    ):
        assert getattr(ps, name) == getattr(psweep016, name)
    assert ps.FILL_VALUE is psweep016.FILL_VALUE


def func_prints(pset):
    print("out", pset["a"])
    return {"r_": pset["a"]}


def _logs_kinds(df: pd.DataFrame) -> list[tuple[str, str]]:
    return [(type(val).__name__, repr(val)) for val in df._logs.values]


@pytest.mark.parametrize("modes", [("db", "file"), ("file", "db"), ("db", None, "db+file")])
def test_logs_of_rows_without_db_capture_as_psweep(psweep016, workdir, modes):
    """Rows run with capture_logs "file" (or None) next to rows with "db": `_logs` holds what
    psweep's holds there (on pandas 3: float nan; on pandas 2: the fill value)."""
    for lib, calc in ((psweep016, "theirs"), (ps, "ours")):
        for mode in modes:
            df = lib.run(func_prints, ps.plist("a", [1, 2]), calc_dir=calc, capture_logs=mode)
    theirs = psweep016.df_read("theirs/database.pk")
    ours = ps.df_read("ours/database.pk")
    assert list(ours.columns) == list(theirs.columns)
    assert _logs_kinds(ours) == _logs_kinds(theirs) == _logs_kinds(df)
    if pd.__version__.startswith("3."):
        assert any(kind == ("float", "nan") for kind in _logs_kinds(ours))
