"""Building params: plist, pgrid, itr2params, stargrid, merge_dicts, filters, intspace, logspace."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

import runner.sweep as ps
from runner.errors import RunnerError

A = ps.plist("a", [1, 2])
B = ps.plist("b", [77, 88, 99])
C = ps.plist("c", [11, 22])

AB = [
    {"a": 1, "b": 77},
    {"a": 1, "b": 88},
    {"a": 1, "b": 99},
    {"a": 2, "b": 77},
    {"a": 2, "b": 88},
    {"a": 2, "b": 99},
]


def test_plist():
    assert ps.plist("a", [1, 2, 3]) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert ps.plist("x", (v for v in "ab")) == [{"x": "a"}, {"x": "b"}]
    assert ps.plist("a", []) == []


def test_pgrid_args_and_list_are_the_same():
    assert ps.pgrid(A, B) == AB
    assert ps.pgrid([A, B]) == AB
    assert ps.itr2params(product(A, B)) == AB
    assert ps.pgrid([A]) == A


def test_pgrid_zip_and_const():
    acref = [{"a": 1, "c": 11}, {"a": 2, "c": 22}]
    assert ps.itr2params(zip(A, C)) == acref
    assert ps.pgrid([zip(A, C)]) == acref
    const = ps.plist("const", [1.23])
    got = ps.pgrid(zip(A, C), B, const)
    assert got == ps.itr2params(product(zip(A, C), B, const))
    assert len(got) == 6
    assert got[0] == {"a": 1, "c": 11, "b": 77, "const": 1.23}
    assert ps.pgrid([zip(A, C), B]) == ps.pgrid(zip(A, C), B) != []


def test_pgrid_manual_example_with_none():
    a = ps.plist("a", [1, 2])
    b = ps.plist("b", ["xx", "yy"])
    c = ps.plist("c", [88, None, "Z"])
    assert ps.pgrid(zip(a, b), c) == [
        {"a": 1, "b": "xx", "c": 88},
        {"a": 1, "b": "xx", "c": None},
        {"a": 1, "b": "xx", "c": "Z"},
        {"a": 2, "b": "yy", "c": 88},
        {"a": 2, "b": "yy", "c": None},
        {"a": 2, "b": "yy", "c": "Z"},
    ]


def test_pgrid_single_plist_is_an_error():
    with pytest.raises(ValueError, match=r"pgrid\(\[a\]\)") as info:
        ps.pgrid(A)
    # psweep raised AssertionError here; scripts catching that keep working
    assert isinstance(info.value, AssertionError)
    assert isinstance(info.value, RunnerError)


def test_pgrid_single_zip_is_an_error():
    with pytest.raises(ValueError, match="overlap") as info:
        ps.pgrid(zip(A, C))
    assert any("pgrid([zip(a, b)])" in note for note in info.value.__notes__)


def test_overlapping_keys_are_an_error():
    with pytest.raises(ValueError, match=r"dict keys overlap: \['a'\]"):
        ps.pgrid(A, ps.plist("a", [5]))
    # also between non-adjacent dicts (psweep only compared neighbours)
    with pytest.raises(ValueError, match="overlap"):
        ps.pgrid(A, B, ps.plist("a", [5]))
    with pytest.raises(AssertionError):
        ps.itr2params([({"a": 1}, {"a": 2})])


def test_itr2params_needs_dicts_and_same_lengths():
    with pytest.raises(TypeError, match="expected a dict"):
        ps.itr2params([(1, 2)])
    with pytest.raises(ValueError, match="same number of keys"):
        ps.itr2params([({"a": 1},), ({"a": 1}, {"b": 2})])


def test_itr2params_nested():
    got = ps.itr2params(product(zip(A, C), ps.plist("d", ["const"])))
    assert got == [{"a": 1, "c": 11, "d": "const"}, {"a": 2, "c": 22, "d": "const"}]


def test_merge_dicts():
    a, b, c = {"a": 1}, {"b": 2}, {"c": 3}
    assert ps.merge_dicts(a) == a
    assert ps.merge_dicts(a, b, c) == ps.merge_dicts([a, b, c]) == {"a": 1, "b": 2, "c": 3}
    assert ps.merge_dicts({"a": 1}, {"a": 2}, {"a": 3}) == {"a": 3}
    assert ps.merge_dicts(d for d in [a, b]) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="overlap"):
        ps.merge_dicts({"a": 1}, {"b": 1}, {"a": 2}, allow_dup_keys=False)
    assert a == {"a": 1}


def test_stargrid_manual_example():
    const = dict(a=1, b=77, c=11)
    a = ps.plist("a", [1, 2, 3, 4])
    b = ps.plist("b", [77, 88, 99])
    star = [
        {"a": 1, "b": 77, "c": 11},
        {"a": 2, "b": 77, "c": 11},
        {"a": 3, "b": 77, "c": 11},
        {"a": 4, "b": 77, "c": 11},
        {"a": 1, "b": 88, "c": 11},
        {"a": 1, "b": 99, "c": 11},
    ]
    assert ps.stargrid(const, vary=[a, b]) == star
    assert ps.stargrid(const, vary=[a, b], skip_dups=False) == star[:4] + [star[0]] + star[4:]
    labelled = ps.stargrid(const, vary=[a, b], vary_labels=["a", "b"])
    assert [p["_vary"] for p in labelled] == ["a"] * 4 + ["b"] * 2
    study = ps.stargrid(const, vary=[a, b], vary_labels=["a", "b"], vary_label_col="study")
    assert "_vary" not in study[0] and study[-1]["study"] == "b"
    c = ps.plist("c", [11, 22, 33, 44])
    zipped = ps.stargrid(const, vary=[ps.itr2params(zip(a, c)), b], vary_labels=["a+c", "b"])
    assert zipped[1] == {"a": 2, "b": 77, "c": 22, "_vary": "a+c"}
    assert ps.stargrid({}, [A]) == A


def test_stargrid_errors_and_unhashable():
    with pytest.raises(ValueError, match="one label per plist"):
        ps.stargrid({"a": 1}, [A, B], vary_labels=["a"])
    import threading

    lock = threading.Lock()
    # cannot be hashed: duplicates are kept as they are
    params = ps.stargrid({"x": lock}, [ps.plist("a", [1, 1])])
    assert len(params) == 2


def test_filter_params_unique_and_dup_hash():
    params = [dict(a=1, b=2, c=3), dict(a=1, b=2, c=3), dict(a=1, b=2, c=444)]
    assert ps.filter_params_unique(params) == [params[0], params[2]]
    hashes = [ps.pset_hash(p) for p in params[:2]]
    assert ps.filter_params_dup_hash(params, hashes) == [params[2]]
    assert ps.filter_params_dup_hash(params, np.array(hashes + [ps.pset_hash(params[2])])) == []
    # a stored _pset_hash is used as it is
    tagged = [dict(a=1, _pset_hash="h1"), dict(a=1, _pset_hash="h2")]
    assert ps.filter_params_unique(tagged) == tagged
    assert ps.filter_params_dup_hash(tagged, ["h1"]) == [tagged[1]]


def test_intspace():
    assert (ps.intspace(0, 4, 5) == np.arange(5)).all()
    assert (ps.intspace(0, 5, 5) == np.array([0, 1, 2, 4, 5])).all()
    assert (ps.intspace(0, 5, 20) == np.arange(6)).all()
    assert ps.intspace(0, 4, 5).dtype == np.int64


def test_logspace():
    ref = np.logspace(np.log10(0.2), np.log10(1.0))
    np.testing.assert_allclose(ps.logspace(0.2, 1.0), ref)
    ref_e = np.logspace(np.log(0.2), np.log(1.0), base=np.e, num=20)
    np.testing.assert_allclose(ps.logspace(0.2, 1.0, num=20, base=np.e, log_func=np.log), ref_e)
    val = ps.logspace(0.2, 1.0, offset=2.5)
    np.testing.assert_allclose([val[0], val[-1]], [0.2, 1.0])
    assert not np.allclose(val, ref)
    with pytest.raises(ValueError, match="does not match base"):
        ps.logspace(0.2, 1.0, base=2)
