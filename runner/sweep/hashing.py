"""Pset hashes, the field-name convention, and washing params before a run.

Field names: `_name` (prefix) is book-keeping, `name_` (postfix) is a result, anything else is a
pset parameter. `pset_hash` hashes only the parameters, so book-keeping and results never change it.

Washing: psweep 0.16 sends params through a DataFrame and pandas' per-column type inference, which
also turns columns of numpy scalars into Python numbers and ints mixed with floats into floats (and,
with pandas 3, NA in text columns into nan). We wash element by element instead: the union of keys,
NA values replaced by `fill_value`, every other value kept with its type, so `1`, `1.0` and
`np.int64(1)` stay different psets, as they are for `pset_hash`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable, Iterable, Mapping, Sequence

import joblib
import numpy as np
import pandas as pd

from runner.sweep.errors import PsweepHashError, SweepTypeError

PSET_HASH_ALG = "sha1"
FILL_VALUE = pd.NA

# Types whose values are never NA and never need copying.
_PLAIN_TYPES = frozenset({int, str, bool, bytes, complex, type(None)})


def col_filter(skip_prefix_cols: bool = True, skip_postfix_cols: bool = True) -> Callable[[str], bool]:
    """Predicate on field names: True for the names a pset hash includes."""
    if skip_prefix_cols and skip_postfix_cols:
        return lambda key: not (key.startswith("_") or key.endswith("_"))
    if skip_prefix_cols:
        return lambda key: not key.startswith("_")
    if skip_postfix_cols:
        return lambda key: not key.endswith("_")
    return lambda key: True


def pset_hash(
    dct: Mapping,
    method: str = PSET_HASH_ALG,
    raise_error: bool = True,
    skip_special_cols: bool | None = None,
    skip_prefix_cols: bool = True,
    skip_postfix_cols: bool = True,
) -> str | float:
    """joblib hash of `dct` without `_prefix` and `postfix_` keys; key order does not matter.

    `skip_special_cols` is the deprecated name of `skip_prefix_cols`. With `raise_error=False`
    an unhashable pset gives nan instead of PsweepHashError.
    """
    if not isinstance(dct, Mapping):
        raise SweepTypeError(f"pset_hash needs a dict, got {type(dct).__name__}: {dct!r}")
    if skip_special_cols is not None:
        warnings.warn("skip_special_cols is deprecated, use skip_prefix_cols", DeprecationWarning, stacklevel=2)
        skip_prefix_cols = skip_special_cols
    keep = col_filter(skip_prefix_cols, skip_postfix_cols)
    try:
        return joblib.hash({key: val for key, val in dct.items() if keep(key)}, hash_name=method)
    except TypeError as ex:
        if raise_error:
            raise PsweepHashError(f"cannot hash pset {dct!r}: {ex}") from ex
        return np.nan


def is_na(val: Any) -> bool:
    """True for a scalar missing value: None, nan, pd.NA, NaT; never for lists or arrays."""
    kind = type(val)
    if kind in _PLAIN_TYPES:
        return val is None
    if kind is float:
        return val != val
    if val is pd.NA or val is pd.NaT:
        return True
    try:
        res = pd.isna(val)
    except (TypeError, ValueError):
        return False
    return isinstance(res, (bool, np.bool_)) and bool(res)


def fill_na(values: Iterable, fill_value: Any = FILL_VALUE) -> list:
    """`values` with every NA replaced by `fill_value`."""
    return [fill_value if is_na(val) else val for val in values]


def union_keys(dicts: Iterable[Mapping]) -> list:
    """All keys of `dicts`, in order of first appearance."""
    keys: dict = {}
    for dct in dicts:
        keys.update(dict.fromkeys(dct))
    return list(keys)


def wash_params(params: Sequence[Mapping], fill_value: Any = FILL_VALUE) -> list[dict]:
    """Deep copies of the psets with the union of keys (in first-seen order); NA -> `fill_value`.

    The copy shares one memo, so it equals copy.deepcopy(params); plain values are not copied.
    """
    params = list(params)
    for pset in params:
        if not isinstance(pset, Mapping):
            raise SweepTypeError(f"each pset in params must be a dict, got {type(pset).__name__}: {pset!r}")
    keys = union_keys(params)
    memo: dict = {}
    washed = []
    for pset in params:
        row = {}
        for key in keys:
            val = pset.get(key, fill_value)
            if type(val) not in _PLAIN_TYPES and type(val) is not float:
                if is_na(val):
                    val = fill_value
                else:
                    val = copy.deepcopy(val, memo)
            elif val is None or val != val:
                val = fill_value
            row[key] = val
        washed.append(row)
    return washed
