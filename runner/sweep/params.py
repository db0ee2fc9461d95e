"""Building params (a list of psets, each a dict): plist, pgrid, stargrid and friends."""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from runner.sweep.errors import PsweepHashError, SweepTypeError, SweepValueError
from runner.sweep.hashing import pset_hash
from runner.sweep.helpers import flatten, is_seq, itr


def plist(name: str, seq: Iterable[Any]) -> list[dict]:
    """[{name: value} for value in seq]: one parameter's values."""
    return [{name: entry} for entry in seq]


def _overlap_error(dicts: Sequence[dict]) -> SweepValueError:
    seen: set = set()
    dups: list = []
    for dct in dicts:
        dups += [key for key in dct if key in seen and key not in dups]
        seen.update(dct)
    return SweepValueError(f"dict keys overlap: {dups} in {list(dicts)}")


def _merge(dicts: Sequence[Any], allow_dup_keys: bool) -> dict:
    """Merge dicts left to right; an overlap is an error unless `allow_dup_keys`."""
    merged: dict = {}
    size = 0
    for dct in dicts:
        if not isinstance(dct, dict):
            raise SweepTypeError(f"expected a dict (a pset), got {type(dct).__name__}: {dct!r}")
        merged.update(dct)
        size += len(dct)
    if not allow_dup_keys and len(merged) != size:
        raise _overlap_error(dicts)
    return merged


@itr
def merge_dicts(args: Sequence[dict], *, allow_dup_keys: bool = True) -> dict:
    """Update an empty dict with each dict, left to right: merge_dicts(a, b) or ([a, b])."""
    return _merge(list(args), allow_dup_keys)


def _merge_flat_tuple(entry: Any) -> dict | None:
    """Fast path: merge a tuple of dicts without overlapping keys; None for anything else."""
    if type(entry) is not tuple:
        return None
    merged: dict = {}
    size = 0
    for dct in entry:
        if type(dct) is not dict:
            return None
        merged.update(dct)
        size += len(dct)
    return merged if len(merged) == size else None


def _flat_dicts(entry: Any) -> Sequence[Any]:
    """The dicts of one loop entry, e.g. ({'a': 1}, ({'b': 2}, {'c': 3})) -> three dicts."""
    return list(flatten(entry)) if is_seq(entry) else [entry]


def itr2params(loops: Iterable[Any]) -> list[dict]:
    """Turn the (possibly nested) entries of a loop over plists into psets by merging their dicts.

    >>> itr2params(itertools.product(zip(a, b), c))   # a, b varied together, times c

    Keys may not overlap within one pset, and all psets must have the same number of keys.
    """
    params = []
    for entry in loops:
        merged = _merge_flat_tuple(entry)
        params.append(
            _merge(_flat_dicts(entry), allow_dup_keys=False) if merged is None else merged
        )
    lens = set(map(len, params))
    if len(lens) > 1:
        raise SweepValueError(
            f"not all psets have the same number of keys ({sorted(lens)}): {params}"
        )
    return params


def pgrid(*plists: Any) -> list[dict]:
    """All combinations (itertools.product) of plists: pgrid(a, b, c) or pgrid([a, b, c]).

    Entries may be zips of plists to vary params together: pgrid(zip(a, b), c). With one plist
    use pgrid([a]); pgrid(a) and pgrid(zip(a, b)) are errors, as in psweep.
    """
    if len(plists) != 1:
        return itr2params(itertools.product(*plists))
    (arg,) = plists
    if not is_seq(arg):
        raise SweepTypeError(f"pgrid needs plists, got {type(arg).__name__}: {arg!r}")
    loops = list(arg)
    if loops and all(isinstance(item, dict) for item in loops):
        raise SweepValueError(
            f"pgrid(a) got one plist ({loops[:3]}{' ...' if len(loops) > 3 else ''}); "
            "a single plist must be wrapped in a list: pgrid([a])"
        )
    try:
        return itr2params(itertools.product(*loops))
    except (SweepValueError, SweepTypeError) as ex:
        if not isinstance(arg, list):
            ex.add_note(
                "pgrid(x) with a single argument loops over the entries of x; "
                "for an iterator such as zip(a, b) write pgrid([zip(a, b)])"
            )
        raise


def filter_params_unique(params: Sequence[dict]) -> list[dict]:
    """The first pset of each distinct hash (`_pset_hash` if a pset has one, else computed)."""
    seen: set = set()
    out = []
    for pset in params:
        key = _hash_of(pset)
        if key not in seen:
            seen.add(key)
            out.append(pset)
    return out


def filter_params_dup_hash(params: Sequence[dict], hashes: Iterable[str]) -> list[dict]:
    """The psets whose hash (`_pset_hash` or computed) is not in `hashes`."""
    known = set(hashes)
    return [pset for pset in params if _hash_of(pset) not in known]


def _hash_of(pset: Mapping) -> Any:
    return pset["_pset_hash"] if "_pset_hash" in pset else pset_hash(pset)


def stargrid(
    const: dict,
    vary: Sequence[Sequence[dict]],
    vary_labels: Sequence[str] | None = None,
    vary_label_col: str = "_vary",
    skip_dups: bool = True,
) -> list[dict]:
    """Vary each plist of `vary` in turn around the constant values `const` (a "star").

    `vary_labels` adds a column `vary_label_col` naming what was varied; `skip_dups` drops
    repeated psets (kept as they are if they cannot be hashed).
    """
    if vary_labels is not None and len(vary_labels) != len(vary):
        raise SweepValueError(
            f"vary_labels has {len(vary_labels)} entries but vary has {len(vary)} plists; "
            "give one label per plist"
        )
    params = []
    for idx, plist_ in enumerate(vary):
        for dct in plist_:
            extra = {} if vary_labels is None else {vary_label_col: vary_labels[idx]}
            params.append({**const, **dct, **extra})
    if not skip_dups:
        return params
    try:
        return filter_params_unique(params)
    except PsweepHashError:
        return params


def intspace(*args: Any, dtype: Any = np.int64, **kwds: Any) -> np.ndarray:
    """np.linspace rounded to unique integers, so possibly fewer than `num` values."""
    return np.unique(np.round(np.linspace(*args, **kwds)).astype(dtype))


def logspace(
    start: float,
    stop: float,
    num: int = 50,
    offset: float = 0,
    log_func: Callable = np.log10,
    **kwds: Any,
) -> np.ndarray:
    """Like np.logspace, but `start` and `stop` are the bounds (not exponents).

    A larger `offset` spaces the points more evenly: np.logspace(log(start + offset),
    log(stop + offset)) - offset. Pass `base` together with a matching `log_func`.
    """
    base = kwds.pop("base", 10.0)
    if not np.allclose(log_func(base), 1.0):
        raise SweepValueError(
            f"log_func={log_func!r} does not match base={base!r} (log_func(base) must be 1)"
        )
    return (
        np.logspace(log_func(start + offset), log_func(stop + offset), num=num, base=base, **kwds)
        - offset
    )
