"""Helpers psweep users call: shell, paths, sequences, files, UUIDs, the call wrappers."""

from __future__ import annotations

import io
import locale
import os
import subprocess
import uuid

import pandas as pd
import pytest

import runner.sweep as ps
from runner.store.files import write_atomic
from runner.sweep import fileio


def test_system():
    assert ps.system("echo hi; echo err >&2").stdout.decode() == "hi\nerr\n"
    with pytest.raises(subprocess.CalledProcessError) as info:
        ps.system("echo before; exit 3")
    assert info.value.returncode == 3
    assert any("before" in note for note in info.value.__notes__)
    ps.system("ls; false_but_hidden_cmd_xyz; true")  # only the last status counts, as in a shell


def test_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ps.fullpath("~/a/../b") == str(tmp_path / "b")
    ps.makedirs(str(tmp_path / "x" / "y"))
    ps.makedirs(str(tmp_path / "x" / "y"))
    assert (tmp_path / "x" / "y").is_dir()
    ps.makedirs("")
    ps.makedirs("   ")


def test_is_seq_itr_flatten():
    for obj in ({"a": 1}, io.StringIO(), "123", 1, None):
        assert not ps.is_seq(obj)
    for obj in ([1], {1}, (1,), range(2), (x for x in [])):
        assert ps.is_seq(obj)

    @ps.itr
    def func(args):
        return list(args)

    assert func(1) == [1] and func([1]) == [1] and func([[1]]) == [[1]]
    assert func(1, 2) == [1, 2] and func([1, 2]) == [1, 2] and func(x for x in [1, 2]) == [1, 2]
    assert func.__name__ == "func"
    assert list(ps.flatten([1, [2, (3, [4])], "ab", {"k": 1}])) == [1, 2, 3, 4, "ab", {"k": 1}]


def test_flatten_dict():
    assert ps.flatten_dict(dict(a=1, b=dict(c=2, d={23: 42}))) == {"a": 1, "b_c": 2, "b_d_23": 42}
    assert ps.flatten_dict({"a": {"b": 1}}, join_str="/") == {"a/b": 1}
    assert ps.flatten_dict({1: {2: 3}}) == {"1_2": 3}


def test_file_io(tmp_path):
    fn = str(tmp_path / "d" / "f.txt")
    ps.file_write(fn, "a\n")
    ps.file_write(fn, "b\u00e9\n", mode="a")
    assert ps.file_read(fn) == "a\nb\u00e9\n"
    ps.pickle_write(str(tmp_path / "p" / "x.pk"), {"a": pd.NA, "b": [1]})
    assert ps.pickle_read(str(tmp_path / "p" / "x.pk"))["a"] is pd.NA
    ps.json_write(str(tmp_path / "j.json"), {"a": [1, 2]})
    assert ps.json_read(str(tmp_path / "j.json")) == {"a": [1, 2]}
    assert (tmp_path / "j.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert sorted(os.listdir(tmp_path)) == ["d", "j.json", "p"]
    write_atomic(str(tmp_path / "core"), b"")
    assert os.stat(fn).st_mode & 0o777 == os.stat(tmp_path / "core").st_mode & 0o777


def test_unencodable_text_is_written_as_character_references(tmp_path, monkeypatch):
    monkeypatch.setattr(locale, "getpreferredencoding", lambda do_setlocale=True: "ascii")
    ps.file_write(str(tmp_path / "f.txt"), "b\u00e9\u4e2d")
    assert (tmp_path / "f.txt").read_bytes() == b"b&#233;&#20013;"


def test_every_file_goes_through_the_one_atomic_writer(workdir, monkeypatch):
    written = []

    def recording(path, data):
        assert isinstance(data, bytes)
        written.append(os.path.relpath(path))
        write_atomic(path, data)

    monkeypatch.setattr(fileio, "write_atomic", recording)

    def func(pset):
        print("hello")
        return {"r_": 1}

    df = ps.run(func, [{"a": 1}], crash_safe=True, tmpsave=True, capture_logs="db+file")
    run_id, pset_id = df._run_id.values[0], df._pset_id.values[0]
    ps.df_write("db.json", df, fmt="json")
    ps.file_write("t.txt", "x")
    ps.pickle_write("p.pk", 1)
    ps.json_write("j.json", {})
    ps.run(func, [{"a": 2}], simulate=True)
    assert sorted(written) == sorted(
        [
            f"calc/{pset_id}/logs.txt",
            f"calc/tmpsave/{run_id}/{pset_id}.pk",
            f"calc/journal/{run_id}/{pset_id}.pk",
            "calc/database.pk",
            "db.json",
            "t.txt",
            "p.pk",
            "j.json",
            "calc.simulate/database.pk",  # the copy of the database
            "calc.simulate/database.pk",  # the simulated run's
        ]
    )


def test_a_hard_linked_database_is_replaced_not_changed(workdir):
    backup = workdir / "backup.pk"
    """A `cp -al` backup of calc/ stays as it was when run() writes the database again."""
    ps.run(lambda pset: {"r_": 1}, [{"a": 1}])
    os.link("calc/database.pk", backup)
    before = backup.read_bytes()
    df = ps.run(lambda pset: {"r_": 2}, [{"a": 2}])
    assert backup.read_bytes() == before and len(df) == 2
    assert ps.df_read("calc/database.pk").equals(df) and len(ps.df_read("backup.pk")) == 1


def test_uuids(monkeypatch):
    one = ps.get_uuid()
    assert uuid.UUID(one).version == 4 and str(uuid.UUID(one)) == one
    many = ps.get_many_uuids(50)
    assert len(set(many)) == 50
    assert ps.get_uuid(existing=many) not in many
    assert not set(ps.get_many_uuids(20, existing=many)) & set(many)
    fixed = uuid.UUID(many[0])
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    with pytest.raises(ps.SweepError, match="after 2 attempts"):
        ps.get_uuid(retry=2, existing=many)
    with pytest.raises(ps.SweepError, match="3 distinct new UUIDs"):
        ps.get_many_uuids(3)


def test_func_wrapper_and_capture_logs_wrapper(tmp_path, capsys):
    pset = {"a": 1, "_pset_id": "p1", "_run_id": "r1", "_calc_dir": str(tmp_path)}
    row = ps.func_wrapper(dict(pset), lambda p: {"r_": p["a"] + 1}, tmpsave=True)
    assert (
        row["r_"] == 2 and isinstance(row["_time_utc"], pd.Timestamp) and row["_pset_runtime"] >= 0
    )
    assert ps.pickle_read(str(tmp_path / "tmpsave" / "r1" / "p1.pk")) == row
    assert "r_" not in ps.func_wrapper(dict(pset), lambda p: {"r_": 1}, simulate=True)
    with pytest.raises(ValueError, match="missing"):
        ps.func_wrapper({"a": 1}, lambda p: {})

    def noisy(p):
        print("hello")
        return {"r_": 1}

    assert ps.capture_logs_wrapper(dict(pset), noisy, "db") == {"r_": 1, "_logs": "hello\n"}
    assert ps.capture_logs_wrapper(dict(pset), noisy, "db", db_field="log_") == {
        "r_": 1,
        "log_": "hello\n",
    }
    assert ps.capture_logs_wrapper(dict(pset), noisy, "file") == {"r_": 1}
    assert (tmp_path / "p1" / "logs.txt").read_text() == "hello\n"
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="capture_logs='x'"):
        ps.capture_logs_wrapper(dict(pset), noisy, "x")
