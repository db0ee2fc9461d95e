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
import functools
import hashlib
import pickle
import struct
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Sequence

import joblib
import numpy as np
import pandas as pd

from runner.sweep.errors import PsweepHashError, SweepTypeError

PSET_HASH_ALG = "sha1"
FILL_VALUE = pd.NA

# Types whose values are never NA and never need copying.
_PLAIN_TYPES = frozenset({int, str, bool, bytes, complex, type(None)})


def col_filter(
    skip_prefix_cols: bool = True, skip_postfix_cols: bool = True
) -> Callable[[str], bool]:
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
        warnings.warn(
            "skip_special_cols is deprecated, use skip_prefix_cols",
            DeprecationWarning,
            stacklevel=2,
        )
        skip_prefix_cols = skip_special_cols
    keep = col_filter(skip_prefix_cols, skip_postfix_cols)
    kept = {key: val for key, val in dct.items() if keep(key)}
    fast = _fast_hash(kept, method) if _fast_hash_ok() else None
    if fast is not None:
        return fast
    try:
        return joblib.hash(kept, hash_name=method)
    except TypeError as ex:
        if raise_error:
            raise PsweepHashError(f"cannot hash pset {dct!r}: {ex}") from ex
        return np.nan


# joblib.hash(obj) is the hex digest of obj pickled with protocol 3 by a pure-Python Pickler that
# sorts dict items and does not memoize strings. For the common pset, a flat dict of str keys and
# int/float/str/bool/None values, we write those exact bytes directly (about 20 times faster);
# anything else goes to joblib. _fast_hash_ok() checks once that both agree on this interpreter.
_MAX_FAST_ITEMS = 1000  # pickle writes SETITEMS in batches of 1000


def _encode_int(val: int) -> bytes:
    if 0 <= val <= 0xFF:
        return b"K" + struct.pack("<B", val)
    if 0 <= val <= 0xFFFF:
        return b"M" + struct.pack("<H", val)
    if -0x80000000 <= val <= 0x7FFFFFFF:
        return b"J" + struct.pack("<i", val)
    encoded = pickle.encode_long(val)
    if len(encoded) < 256:
        return b"\x8a" + struct.pack("<B", len(encoded)) + encoded
    return b"\x8b" + struct.pack("<i", len(encoded)) + encoded


def _encode_str(val: str) -> bytes:
    encoded = val.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(encoded)) + encoded


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    str: _encode_str,
    int: _encode_int,
    float: lambda val: b"G" + struct.pack(">d", val),
    bool: lambda val: b"\x88" if val else b"\x89",
    type(None): lambda val: b"N",
}


def _fast_hash(dct: dict, method: str) -> str | None:
    """joblib.hash(dct, hash_name=method) for flat dicts of plain values; None for anything else."""
    if method not in ("md5", "sha1") or len(dct) > _MAX_FAST_ITEMS:
        return None
    parts = [b"\x80\x03}q\x00"]
    if len(dct) > 1:
        parts.append(b"(")
    for key in dct:
        if type(key) is not str:
            return None
    for key, val in sorted(dct.items()):
        encode = _ENCODERS.get(type(val))
        if encode is None:
            return None
        parts.append(_encode_str(key))
        parts.append(encode(val))
    if dct:
        parts.append(b"u" if len(dct) > 1 else b"s")
    parts.append(b".")
    return hashlib.new(method, b"".join(parts), usedforsecurity=False).hexdigest()


@functools.cache
def _fast_hash_ok() -> bool:
    """True if _fast_hash agrees with joblib here (checked once, on values of every plain type)."""
    probes = [
        {},
        {"a": 1},
        {
            "b": -2,
            "a": 300,
            "c": 70000,
            "d": 2**40,
            "e": -(2**31),
            "f": 2**2100,
            "g": 0,
            "h": 255,
            "i": 65536,
        },
        {
            "x": 2.5,
            "y": float("nan"),
            "z": -0.0,
            "s": "x\u00e9\ud800",
            "t": True,
            "u": False,
            "n": None,
            "e": "",
        },
    ]
    return all(
        _fast_hash(p, m) == joblib.hash(p, hash_name=m) for p in probes for m in ("md5", "sha1")
    )


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
    out = []
    append = out.append
    for val in values:
        kind = type(val)
        if kind is str or kind is int or kind is bool:
            append(val)
        elif kind is float:
            append(fill_value if val != val else val)
        else:
            append(fill_value if is_na(val) else val)
    return out


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
            raise SweepTypeError(
                f"each pset in params must be a dict, got {type(pset).__name__}: {pset!r}"
            )
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
