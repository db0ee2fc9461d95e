"""RunfileStore and metadata.json: the coalescing writer, merging invocations, resume reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

from support import wait_for
from runner.spec.runfile import parse_runfile
from runner.store.runfile import MetadataFile, RunfileStore, rotate_logs


def entry(status: str, updated: float, **extra) -> dict:
    return {"command": "c", "status": status, "updated": updated, **extra}


def file_statuses(path: Path) -> dict:
    try:
        return {k: v["status"] for k, v in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return {}


def test_the_writer_thread_writes_soon_and_coalesces(tmp_path):
    path = tmp_path / "metadata.json"
    meta = MetadataFile(str(path), interval=3600)
    writes = []
    write = meta._write
    meta._write = lambda pending: (writes.append(len(pending)), write(pending))
    meta.start()
    try:
        meta.update("a", entry("running", 1))
        wait_for(lambda: file_statuses(path) == {"a": "running"}, what="the first write")
        for i in range(20):  # each update wakes the thread; it waits out its interval
            meta.update("a", entry("done", 2 + i))
            meta.update(f"b{i}", entry("done", 3))
            time.sleep(0.01)  # time for a thread that would write early to do so
        assert file_statuses(path) == {"a": "running"}
    finally:
        meta.close()  # writes what is left
    assert writes == [1, 21]
    statuses = file_statuses(path)
    assert statuses.pop("a") == "done" and set(statuses.values()) == {"done"}
    assert len(statuses) == 20
    text = path.read_text()
    assert text.startswith("{\n  \"a\": {") and text.count("\n") == 23  # one job per line


def test_two_invocations_merge_and_the_newer_entry_wins(tmp_path):
    path = str(tmp_path / "metadata.json")
    first, second = MetadataFile(path), MetadataFile(path)
    first.load(), second.load()
    first.update("a", entry("done", 5))
    first.update("x", entry("done", 5))
    first.flush()
    second.update("b", entry("running", 1))
    second.update("x", entry("running", 4))  # older than what the first one wrote
    second.flush()
    assert file_statuses(Path(path)) == {"a": "done", "x": "done", "b": "running"}
    first.update("b", entry("done", 2))
    first.flush()
    assert file_statuses(Path(path)) == {"a": "done", "x": "done", "b": "done"}


def test_pending_entries_never_hide_a_result_and_results_replace_pending(tmp_path):
    path = str(tmp_path / "metadata.json")
    meta = MetadataFile(path)
    meta.update("a", entry("done", 5))
    meta.flush()
    meta.update("a", entry("pending", 0), MetadataFile.PENDING_NEW)
    meta.update("b", entry("pending", 0), MetadataFile.PENDING_NEW)
    meta.flush()
    assert file_statuses(Path(path)) == {"a": "done", "b": "pending"}
    meta.update("a", entry("pending", 9), MetadataFile.PENDING_RERUN)  # --mode overwrite
    meta.flush()
    assert file_statuses(Path(path)) == {"a": "pending", "b": "pending"}
    meta.update("a", entry("done", 5))  # the job's own (older) state after a crash
    meta.flush()
    assert file_statuses(Path(path))["a"] == "done"


def test_resume_reads_only_the_job_files_of_jobs_not_done(tmp_path, monkeypatch):
    jobs = parse_runfile("".join(f"echo {i}\n" for i in range(50))).jobs
    store = RunfileStore(str(tmp_path / "runs/r"))
    done = {"status": "done", "updated": 1.0}
    store.metadata.update(jobs[0].id, {**done, "status": "failed"})
    for job in jobs[1:40]:
        store.metadata.update(job.id, done)
    store.metadata.flush()
    read = []
    monkeypatch.setattr(RunfileStore, "read_job", lambda self, ident: read.append(ident))
    split = RunfileStore(store.dir).split(jobs)
    assert [t.name for t in split.tasks] == [jobs[0].id] + [j.id for j in jobs[40:]]
    assert len(split.done) == 39
    assert sorted(read) == sorted(t.name for t in split.tasks)


def test_overwrite_marks_every_job_pending_before_it_runs(tmp_path):
    jobs = parse_runfile("echo a\necho b\n").jobs
    store = RunfileStore(str(tmp_path / "runs/r"))
    store.metadata.update(jobs[0].id, {"status": "done", "updated": 1.0})
    store.metadata.flush()
    fresh = RunfileStore(store.dir)
    split = fresh.split(jobs, force=True)
    assert (len(split.todo), len(split.done)) == (2, 0)
    fresh.metadata.flush()
    meta = json.loads(Path(store.metadata.path).read_text())
    assert {k: v["status"] for k, v in meta.items()} == {jobs[0].id: "pending",
                                                         jobs[1].id: "pending"}
    assert meta[jobs[1].id]["command"] == "echo b"


def test_rotate_logs(tmp_path):
    assert rotate_logs(str(tmp_path)) is None
    for attempt in ("first", "second", "third"):
        (tmp_path / "out.log").write_text(attempt)
        if attempt != "second":
            (tmp_path / "err.log").write_text(attempt)
        rotate_logs(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "err.log.1", "err.log.3", "out.log.1", "out.log.2", "out.log.3"]
    assert (tmp_path / "out.log.2").read_text() == "second"
