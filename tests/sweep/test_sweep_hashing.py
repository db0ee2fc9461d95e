"""pset_hash values and the washing of params before a run."""

from __future__ import annotations

import threading

import joblib
import numpy as np
import pandas as pd
import pytest

import runner.sweep as ps
from runner.sweep.hashing import is_na, wash_params

# Hashes printed in psweep's manual (joblib sha1), e.g. the getting-started table.
MANUAL_HASHES = [
    ({"a": 1, "b": 88}, "2580bf27aca152e5427389214758e61ea0e544e0"),
    ({"a": 1, "b": 99}, "f2f17559c39b416483251f097ac895945641ea3a"),
    ({"a": 3, "b": 99}, "54baeefd998f4d8a8c9524c50aa0d88407cabb46"),
    ({"a": 1}, "64846e128be5c974d6194f77557d0511542835a8"),
    ({"a": 2}, "e746f91e51f09064bd7f1e516701ba7d0d908653"),
    ({"a": 4}, "79ba178b3895a603bf9d84dea82e034791e8fe30"),
    (dict(a=1, b=dict(c=2, d=[1, 2, "a"])), "c41c669212f58293fb88aba643b24a995d9aff1a"),
]


@pytest.mark.parametrize("pset, expected", MANUAL_HASHES)
def test_pset_hash_exact_values(pset, expected):
    assert ps.PSET_HASH_ALG == "sha1"
    assert ps.pset_hash(pset) == expected


def test_pset_hash_is_joblib_sha1_without_prefix_and_postfix_keys():
    pset = {"a": 1, "b": "x", "_pset_id": "id", "result_": 3.0, "_x_": 1}
    assert ps.pset_hash(pset) == joblib.hash({"a": 1, "b": "x"}, hash_name="sha1")
    assert ps.pset_hash(pset, skip_prefix_cols=False) == joblib.hash(
        {"a": 1, "b": "x", "_pset_id": "id"}, hash_name="sha1"
    )
    assert ps.pset_hash(pset, skip_postfix_cols=False) == joblib.hash(
        {"a": 1, "b": "x", "result_": 3.0}, hash_name="sha1"
    )
    assert ps.pset_hash(pset, skip_prefix_cols=False, skip_postfix_cols=False) == joblib.hash(
        pset, hash_name="sha1"
    )
    assert ps.pset_hash(pset, method="md5") == joblib.hash({"a": 1, "b": "x"}, hash_name="md5")


def test_pset_hash_key_order_does_not_matter_types_do():
    assert ps.pset_hash({"a": 1, "b": 2}) == ps.pset_hash({"b": 2, "a": 1})
    d1 = dict(b=dict(c=2, d=[1, 2, "a"]), a=1)
    assert ps.pset_hash(d1) == MANUAL_HASHES[-1][1]
    values = [1, 1.0, np.int64(1), np.float64(1.0), "1", True, None, pd.NA, np.nan]
    hashes = {ps.pset_hash({"a": v}) for v in values}
    assert len(hashes) == len(values)


def test_pset_hash_skip_special_cols_is_deprecated():
    with pytest.warns(DeprecationWarning, match="skip_prefix_cols"):
        got = ps.pset_hash({"a": 1, "_c": 3}, skip_special_cols=False)
    assert got == joblib.hash({"a": 1, "_c": 3}, hash_name="sha1")


def test_pset_hash_errors():
    with pytest.raises(TypeError, match="needs a dict"):
        ps.pset_hash([("a", 1)])
    lock = threading.Lock()
    with pytest.raises(ps.PsweepHashError) as info:
        ps.pset_hash({"a": lock})
    assert isinstance(info.value, TypeError)
    assert np.isnan(ps.pset_hash({"a": lock}, raise_error=False))


def test_is_na():
    for val in (None, np.nan, float("nan"), pd.NA, pd.NaT, np.float64("nan"), np.datetime64("NaT")):
        assert is_na(val), val
    for val in (0, "", "nan", [None], np.array([np.nan]), {"a": None}, False, pd.Timestamp(0)):
        assert not is_na(val), val


def test_wash_union_of_keys_na_and_types():
    params = [
        {"a": 1, "b": None},
        {"c": np.int64(3), "a": np.nan},
        {"a": pd.NA, "b": np.float32(2)},
    ]
    washed = wash_params(params)
    assert [list(p) for p in washed] == [["a", "b", "c"]] * 3
    assert washed[0]["b"] is pd.NA and washed[0]["c"] is pd.NA
    assert washed[1]["a"] is pd.NA and washed[2]["a"] is pd.NA
    assert type(washed[1]["c"]) is np.int64 and type(washed[2]["b"]) is np.float32
    assert type(washed[0]["a"]) is int
    assert wash_params([{"a": None}], fill_value=-1) == [{"a": -1}]


def test_wash_deep_copies():
    inner = [1, 2]
    params = [{"a": inner, "b": {"x": inner}}]
    washed = wash_params(params)
    washed[0]["a"].append(3)
    washed[0]["c"] = 1
    assert params == [{"a": [1, 2], "b": {"x": [1, 2]}}]
    # the copy keeps aliasing like copy.deepcopy
    assert washed[0]["a"] is washed[0]["b"]["x"]


def test_wash_rejects_non_dicts():
    with pytest.raises(TypeError, match="must be a dict"):
        wash_params([{"a": 1}, ["a", 1]])


def test_run_hashes_washed_psets(workdir):
    seen = []

    def func(pset):
        seen.append(dict(pset))
        return {}

    params = [{"a": 1, "b": None}, {"a": np.int64(2)}, {"a": 3.0, "b": pd.NA}]
    df = ps.run(func, params, save=False)
    assert params[0] == {"a": 1, "b": None} and params[1] == {
        "a": np.int64(2)
    }  # caller's psets untouched
    assert [type(p["a"]) for p in seen] == [int, np.int64, float]
    assert all(p["b"] is pd.NA for p in seen)
    expected = [
        ps.pset_hash({"a": 1, "b": pd.NA}),
        ps.pset_hash({"a": np.int64(2), "b": pd.NA}),
        ps.pset_hash({"a": 3.0, "b": pd.NA}),
    ]
    assert df._pset_hash.tolist() == expected
    assert type(df.a.values[1]) is np.int64
    df2 = ps.run(func, params, save=False, fill_value=None)
    assert df2.b.tolist() == [None] * 3
    assert df2._pset_hash.tolist()[0] == ps.pset_hash({"a": 1, "b": None})


def _random_value(rng):
    kind = rng.randrange(6)
    if kind == 0:
        edge = [
            0,
            1,
            255,
            256,
            65535,
            65536,
            2**31 - 1,
            2**31,
            -1,
            -(2**31),
            -(2**31) - 1,
            2**64,
            -(2**200),
        ]
        return rng.choice(edge + [rng.randint(-(2**70), 2**70)])
    if kind == 1:
        return rng.choice(
            [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-310, rng.uniform(-1e9, 1e9)]
        )
    if kind == 2:
        chars = [
            rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x10FFFF)])
            for _ in range(rng.randrange(12))
        ]
        return "".join(map(chr, chars))  # surrogates included
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return None
    return "x" * rng.choice([0, 255, 256, 70000])


def test_fast_hash_matches_joblib_on_random_psets():
    """pset_hash writes joblib's pickle bytes itself for plain psets: it must give joblib's hash."""
    import random

    from runner.sweep.hashing import _fast_hash, _fast_hash_ok

    assert _fast_hash_ok()
    rng = random.Random(1234)
    for _ in range(3000):
        keys = [
            "".join(rng.choice("ab_\u00e9z0") for _ in range(rng.randrange(1, 4)))
            for _ in range(rng.randrange(0, 8))
        ]
        pset = {key: _random_value(rng) for key in keys}
        for method in ("sha1", "md5"):
            fast = _fast_hash(pset, method)
            assert fast is not None
            assert fast == joblib.hash(pset, hash_name=method), pset
        assert ps.pset_hash(pset, skip_prefix_cols=False, skip_postfix_cols=False) == joblib.hash(
            pset, hash_name="sha1"
        )


def test_fast_hash_leaves_other_types_to_joblib():
    from runner.sweep.hashing import _fast_hash

    for pset in (
        {"a": np.int64(1)},
        {"a": pd.NA},
        {"a": [1]},
        {1: 2},
        {"a": 1.0, "b": np.float64(1.0)},
        {f"k{i}": i for i in range(1001)},
    ):
        assert _fast_hash(pset, "sha1") is None
        got = ps.pset_hash(pset, skip_prefix_cols=False, skip_postfix_cols=False)
        assert got == joblib.hash(pset, hash_name="sha1")
    assert _fast_hash({"a": 1}, "sha256") is None
