"""The database: a pickled pandas DataFrame, all columns of dtype object, RangeIndex.

`<calc_dir>/<database_basename>` (default `calc/database.pk`) holds one row per pset that `run`
called `func` on. Files are written atomically (runner.store.files.write_atomic).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from runner.sweep.errors import SweepValueError
from runner.sweep.fileio import write_bytes
from runner.sweep.hashing import FILL_VALUE, col_filter, fill_na, pset_hash

CALC_DIR = "calc"
DATABASE_BASENAME = "database.pk"
PANDAS_DEFAULT_ORIENT = "records"
PANDAS_TIME_UNIT = "s"
LOGS_COL = "_logs"

_FORMATS = ("pickle", "json")
_UUID_DIR = re.compile(r"(([0-9a-z]+)-){4}([0-9a-z]+)")


def object_frame(data: dict, columns: Sequence, index: Any = None) -> pd.DataFrame:
    """A DataFrame of object dtype with an object-dtype column index.

    pandas 3 would make the column labels a str-dtype Index, whose pickle pandas 2 cannot load;
    an object Index keeps databases readable by psweep users on pandas 2.
    """
    return pd.DataFrame(
        data, columns=pd.Index(list(columns), dtype=object), index=index, dtype=object
    )


def append_rows(
    df: pd.DataFrame, rows: Sequence[Mapping], fill_value: Any = FILL_VALUE
) -> pd.DataFrame:
    """`df` with `rows` appended: columns of `df` first, then new ones in first-seen order.

    Every NA (also in the old rows, and where a row lacks a column) becomes `fill_value`, like
    psweep's concat followed by df_ensure_dtypes, but without pandas' type inference.
    """
    columns = list(df.columns)
    seen = set(columns)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    old = {col: df[col].to_numpy(dtype=object) for col in df.columns}
    data = {}
    for col in columns:
        head = old[col] if col in old else [fill_value] * len(df)
        data[col] = fill_na(list(head) + [row.get(col, fill_value) for row in rows], fill_value)
    if LOGS_COL in data and pd.isna(np.array(data[LOGS_COL], dtype=object)).any():
        data[LOGS_COL] = as_psweep_stores(data[LOGS_COL])
    return object_frame(data, columns)


def as_psweep_stores(values: Sequence) -> list:
    """A column as psweep 0.16 stores it: its df_ensure_dtypes lets pandas infer a dtype from the
    values, then casts back to object.

    We apply this to `_logs` only (rows of runs without capture_logs "db" have no logs), so that
    those rows hold what psweep's do: on pandas 3, which infers "str" for text with gaps, the gaps
    come back as float nan; on pandas 2 they keep the fill value.
    """
    return pd.Series(values, dtype=object).apply(_same).astype(object).tolist()


def _same(val: Any) -> Any:
    return val


def df_to_json(df: pd.DataFrame, **kwds: Any) -> str | None:
    """`df.to_json` with defaults orient="records", ISO dates in seconds, double_precision=15."""
    for key, val in dict(
        orient=PANDAS_DEFAULT_ORIENT,
        date_unit=PANDAS_TIME_UNIT,
        date_format="iso",
        double_precision=15,
    ).items():
        kwds.setdefault(key, val)
    return df.to_json(**kwds)


def _check_fmt(fmt: str) -> None:
    if fmt not in _FORMATS:
        raise SweepValueError(f"unknown fmt: {fmt!r}; use one of {', '.join(map(repr, _FORMATS))}")


def df_write(fn: str, df: pd.DataFrame, fmt: str = "pickle", **kwds: Any) -> None:
    """Write `df` to `fn` as a pickle (kwds to pickle.dump) or JSON (kwds to df_to_json)."""
    _check_fmt(fmt)
    if fmt == "pickle":
        write_bytes(fn, pickle.dumps(df, **kwds))
    else:
        write_bytes(fn, df_to_json(df, **kwds).encode("utf-8"))


def df_read(fn: str, fmt: str = "pickle", **kwds: Any) -> pd.DataFrame:
    """Read a DataFrame written by df_write (kwds to pickle.load or pandas.read_json)."""
    _check_fmt(fmt)
    if fmt == "pickle":
        with open(fn, "rb") as fd:
            return pickle.load(fd, **kwds)
    orient = kwds.pop("orient", PANDAS_DEFAULT_ORIENT)
    return pd.read_json(fn, precise_float=True, orient=orient, **kwds)


def df_print(
    df: pd.DataFrame,
    index: bool = False,
    special_cols: bool | None = None,
    prefix_cols: bool = False,
    cols: Sequence[str] = (),
    skip_cols: Sequence[str] = (),
) -> None:
    """Print `df` with sorted column names, by default without the index and `_prefix` columns.

    `cols` selects columns (plus all prefix columns with `prefix_cols=True`), `skip_cols` drops
    columns; use one of the two. `special_cols` is the deprecated name of `prefix_cols`.
    """
    print(make_print_text(df, index, special_cols, prefix_cols, cols, skip_cols))


def make_print_text(
    df: pd.DataFrame,
    index: bool = False,
    special_cols: bool | None = None,
    prefix_cols: bool = False,
    cols: Sequence[str] = (),
    skip_cols: Sequence[str] = (),
) -> str:
    """The text df_print prints."""
    if special_cols is not None:
        warnings.warn(
            "special_cols is deprecated, use prefix_cols", DeprecationWarning, stacklevel=3
        )
        prefix_cols = special_cols
    prefixed = {col for col in df.columns if col.startswith("_")}
    if len(cols) > 0:
        if len(skip_cols) > 0:
            raise SweepValueError("df_print: use either cols or skip_cols, not both")
        shown = set(cols) | (prefixed if prefix_cols else set())
    else:
        shown = set(df.columns) - (set() if prefix_cols else prefixed) - set(skip_cols)
    return df[sorted(shown)].to_string(index=index)


def df_filter_conds(
    df: pd.DataFrame, conds: Iterable[Sequence[bool]], op: str = "and"
) -> pd.DataFrame:
    """Rows of `df` where the bool masks in `conds`, fused with numpy.logical_<op>, are True.

    `op` is "and", "or" or "xor". No conds: `df` itself.
    """
    masks = conds if hasattr(conds, "__len__") else list(conds)
    if len(masks) == 0:
        return df
    for idx, mask in enumerate(masks):
        if len(mask) != len(df):
            raise SweepValueError(
                f"condition at index {idx} has length {len(mask)}, expected len(df)={len(df)}"
            )
    if len(masks) == 1:
        return df[masks[0]]
    if op not in ("and", "or", "xor"):
        raise SweepValueError(f"op={op!r} is not one of 'and', 'or', 'xor'")
    mask = getattr(np, f"logical_{op}").reduce([np.asarray(m, dtype=bool) for m in masks])
    return df[mask]


def filter_cols(cols: Iterable[str], kind: str = "pset") -> list[str]:
    """Column names of one kind: "pset" (params), "pre"/"prefix" (`_x`), "post"/"postfix" (`x_`)."""
    if kind == "pset":
        keep = col_filter(True, True)
    elif kind in ("pre", "prefix"):
        keep = lambda key: key.startswith("_")  # noqa: E731
    elif kind in ("post", "postfix"):
        keep = lambda key: key.endswith("_")  # noqa: E731
    else:
        raise SweepValueError(
            f"kind={kind!r} not supported; use 'pset', 'pre', 'prefix', 'post' or 'postfix'"
        )
    return [col for col in cols if keep(col)]


def df_extract_dicts(df: pd.DataFrame, py_types: bool = False) -> list[dict]:
    """One dict per row; `py_types=True` lets pandas convert values (pd.NA -> None, ...)."""
    if py_types:
        return [ser.to_dict() for _, ser in df.iterrows()]
    cols = list(df.columns)
    return [dict(zip(cols, row)) for row in df.itertuples(index=False, name=None)]


def df_extract_params(df: pd.DataFrame, py_types: bool = False) -> list[dict]:
    """The psets (param columns only) of every row: the `params` that run() was given."""
    return df_extract_dicts(df[filter_cols(df.columns, kind="pset")], py_types=py_types)


def df_extract_row(
    df: pd.DataFrame, pset_id: str, kind: str | None = None, py_types: bool = False
) -> dict:
    """The row with `_pset_id == pset_id` as a dict, optionally only columns of `kind`."""
    sel = df.loc[df._pset_id == pset_id]
    if kind is not None:
        sel = sel[filter_cols(df.columns, kind=kind)]
    if len(sel) != 1:
        raise SweepValueError(f"_pset_id {pset_id!r} selects {len(sel)} rows, expected exactly one")
    ser = sel.iloc[0]
    if py_types:
        return ser.to_dict()
    return dict(zip(ser.keys(), ser.to_list()))


def df_extract_pset(df: pd.DataFrame, pset_id: str, py_types: bool = False) -> dict:
    """The params of the row with `_pset_id == pset_id`."""
    return df_extract_row(df, pset_id=pset_id, py_types=py_types, kind="pset")


def df_update_pset_hash(df: pd.DataFrame, copy: bool = False) -> pd.DataFrame:
    """Add or refresh `_pset_hash` from each row's params."""
    out = df.copy() if copy else df
    hashes = [pset_hash(row) for row in df_extract_dicts(df)]
    out["_pset_hash"] = pd.Series(hashes, index=df.index, dtype=object)
    return out


def df_update_pset_cols(
    df: pd.DataFrame, pset_cols: Iterable[str], fill_value: Any = FILL_VALUE, copy: bool = False
) -> pd.DataFrame:
    """Add the `pset_cols` that `df` lacks, filled with `fill_value`; refresh `_pset_hash`.

    Unlike psweep, a column that exists already is never overwritten, and fewer `pset_cols` than
    `df` has param columns is allowed.
    """
    out = df.copy() if copy else df
    for col in dict.fromkeys(pset_cols):
        if col not in out.columns:
            out[col] = pd.Series([fill_value] * len(out), index=out.index, dtype=object)
    return df_update_pset_hash(out, copy=False)


def df_ensure_dtypes(df: pd.DataFrame, fill_value: Any = FILL_VALUE) -> pd.DataFrame:
    """A copy of `df` with dtype object everywhere and every scalar NA replaced by `fill_value`.

    Values keep their types (psweep let pandas infer and convert them per column).
    """
    data = {col: fill_na(df[col].to_numpy(dtype=object), fill_value) for col in df.columns}
    return object_frame(data, df.columns, index=df.index)


def check_calc_dir(calc_dir: str, df: pd.DataFrame) -> dict[str, set]:
    """Compare `<calc_dir>/<pset_id>` folders with the database's `_pset_id`s.

    Returns {"db_not_disk": ids without a folder, "disk_not_db": folders not in the database}.
    """
    on_disk = {m.group() for m in map(_UUID_DIR.match, os.listdir(calc_dir)) if m is not None}
    in_db = set(df._pset_id.values) if "_pset_id" in df.columns else set()
    return dict(db_not_disk=in_db - on_disk, disk_not_db=on_disk - in_db)
