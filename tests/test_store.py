"""The store's guarantees: atomic files, locks that die with their holder, what counts as done."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

import runner.store.files as store
from runner.errors import DamagedFileError
from runner.store.files import FileLock, encode_state, read_json, write_atomic, write_json
from runner.store.state import is_done


def test_write_atomic_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "stat.json"
    write_atomic(str(path), b"one")
    write_atomic(str(path), b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["stat.json"]


def test_write_atomic_falls_back_where_exchange_is_unsupported(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(store, "_exchange", lambda a, b: calls.append(b) or errno.EINVAL)
    path = tmp_path / "x.json"
    write_atomic(str(path), b"1")
    write_atomic(str(path), b"2")
    assert path.read_bytes() == b"2" and os.listdir(tmp_path) == ["x.json"]
    assert len(calls) == 1 and store._exchange is None  # tried once, then renames as usual


def test_state_file_is_one_line_per_command_and_valid_json(tmp_path):
    state = {"train": {"code": 0, "status": "done"}, "test": {"code": 1, "status": "failed"}}
    text = encode_state(state).decode()
    assert json.loads(text) == state and list(json.loads(text)) == ["train", "test"]
    assert text.splitlines()[1] == '    "train": {"code": 0, "status": "done"},'
    write_json(str(tmp_path / "p.json"), {"b": 1, "a": [1, 2]})
    assert (tmp_path / "p.json").read_text() == (
        '{\n    "a": [\n        1,\n        2\n    ],\n    "b": 1\n}\n')


def test_empty_file_reads_as_missing_and_garbage_is_an_error(tmp_path):
    (tmp_path / "empty.json").write_text("")
    assert read_json(str(tmp_path / "empty.json")) is None
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(DamagedFileError, match="bad.json: not valid JSON"):
        read_json(str(tmp_path / "bad.json"))


@pytest.mark.parametrize("entry, done", [
    ({"code": 0}, True), ({"code": 0, "status": "done"}, True), ({"code": 1}, False),
    ({"code": 1, "status": "running"}, False), ({"code": 0, "status": "running"}, False),
    (None, False), ({}, False)])
def test_only_a_recorded_success_is_done(entry, done):
    assert is_done(entry) is done


def test_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    path = str(tmp_path / ".lock")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from runner.store.files import FileLock; "
         f"l = FileLock({path!r}); assert l.try_acquire(); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lock = FileLock(path)
    assert not lock.try_acquire()
    assert not lock.try_acquire(timeout=0.1)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert lock.try_acquire(timeout=5)
    assert lock.held
    lock.release()
    assert not lock.held


def test_lock_is_not_inherited_by_commands(tmp_path):
    lock = FileLock(str(tmp_path / ".lock"))
    assert lock.try_acquire()
    child = subprocess.run(["ls", "-l", "/proc/self/fd"], capture_output=True, text=True)
    assert ".lock" not in child.stdout
    lock.release()


def test_lock_as_a_context_manager_waits_for_the_holder(tmp_path):
    path = str(tmp_path / "metadata.json.lock")
    holder = FileLock(path)
    assert holder.try_acquire()
    order = []

    def second():
        with FileLock(path):
            order.append("second")

    import threading

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(0.3)
    assert order == []  # still waiting for the holder
    order.append("first released")
    holder.release()
    thread.join(10)
    assert order == ["first released", "second"]


def test_param_file_text_is_what_json_writes_with_indent_4_sorted():
    from hypothesis import given, settings, strategies as st

    from runner.store.files import encode_params

    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text())
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        max_leaves=6)

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.text(max_size=8), values, max_size=6))
    def check(params):
        assert encode_params(params).decode() == json.dumps(params, indent=4, sort_keys=True) + "\n"

    check()
    assert encode_params({"a": 1, "_commands": {"t": "x"}}).decode() == (
        '{\n    "_commands": {\n        "t": "x"\n    },\n    "a": 1\n}\n')


def test_a_directory_is_locked_itself_and_falls_back_to_a_file(tmp_path, monkeypatch):
    task = tmp_path / "Task_1"
    task.mkdir()
    first, second = FileLock(str(task)), FileLock(str(task))
    assert first.try_acquire() and not second.try_acquire()
    first.release()
    assert os.listdir(task) == []  # no lock file needed
    real_flock = store.fcntl.flock

    def nfs_like(fd, operation):  # NFS cannot lock a directory opened for reading
        if os.path.isdir(f"/proc/self/fd/{fd}") and operation & store.fcntl.LOCK_EX:
            raise OSError(errno.EBADF, "Bad file descriptor")
        return real_flock(fd, operation)

    monkeypatch.setattr(store.fcntl, "flock", nfs_like)
    monkeypatch.setattr(FileLock, "_directories_lockable", True)
    assert first.try_acquire()
    assert os.listdir(task) == [".lock"] and not FileLock(str(task)).try_acquire()
    first.release()
