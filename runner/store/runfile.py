"""The files of a launched runfile: each job's state and logs, and `metadata.json`.

The tree of `runs/<runfile stem>/`::

    metadata.json          id -> command, parameters, status, start, end, runtime, exit status,
                           signal, host, slot, gpus, attempt, updated (one job per line)
    metadata.json.lock     held while an invocation rewrites metadata.json
    logs/<id>/out.log      stdout of the job's latest attempt
    logs/<id>/err.log      stderr of the job's latest attempt
    logs/<id>/out.log.N    earlier attempts (and err.log.N): 1 is the oldest
    logs/<id>/job.json     the job's state: what resume trusts
    logs/<id>/.lock        held while an invocation runs the job

`job.json` is written (temp file + rename) when the job starts and when it ends, by the core's
executor through the five store methods below. `metadata.json` is a view of every `job.json`,
rewritten whole (temp file + rename, under `metadata.json.lock`) by one writer thread that
gathers the updates of `METADATA_INTERVAL` seconds (longer only where one write takes more than a
tenth of that: runfiles of tens of thousands of jobs). The cost per job stays constant and the
file is never further behind than that. After a `kill -9` the next launch brings it up to date
from the `job.json` files, so nothing that finished is lost. One invariant keeps resume cheap:
`metadata.json` says `done` only where `job.json` does, so a resume reads `metadata.json` and
only the `job.json` of jobs it does not show as done.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from runner.errors import DamagedFileError, StoreError, UnsafePathError
from runner.spec.runfile import Job
from runner.store.base import Split, TaskStore
from runner.store.files import (FileLock, check_file, encode_json, make_directory, read_json,
                                spare_path, write_atomic, write_owned)
from runner.store.state import TaskState, check_entry, entry_status, is_done, is_stale
from runner.task import Status, Task

METADATA_FILE = "metadata.json"
LOGS_DIR = "logs"
OUT_LOG = "out.log"
ERR_LOG = "err.log"
JOB_FILE = "job.json"
METADATA_INTERVAL = 0.2  # seconds: the most metadata.json lags behind the job files
WRITE_SHARE = 0.1  # for huge files, wait longer, so that writing takes at most this share of time
PUBLIC_FIELDS = ("command", "parameters", "status", "exit_status", "signal", "start", "end",
                 "runtime", "host", "slot", "gpus", "attempt", "updated")


def make_public_entry(record: Dict[str, Any]) -> Dict[str, Any]:
    """The `metadata.json` entry of a `job.json` record."""
    entry = {key: record.get(key) for key in PUBLIC_FIELDS}
    entry["runtime"] = record.get("duration")
    return entry


def make_pending_entry(job: Job, attempt: int = 0, updated: float = 0.0) -> Dict[str, Any]:
    entry: Dict[str, Any] = dict.fromkeys(PUBLIC_FIELDS)
    entry.update(command=job.command, parameters=job.parameters, status=Status.PENDING.value,
                 attempt=attempt, updated=updated)
    return entry


class MetadataFile:
    """`metadata.json`, kept by one writer thread that coalesces updates.

    `update` is cheap and never blocks on the disk; the thread rewrites the file at most every
    `interval` seconds (or ten times as long as the last write took, for files of tens of
    thousands of jobs), under a file lock, merging what other invocations wrote meanwhile (newer
    `updated` wins; a job's own state always replaces a `pending` entry). `close` writes what is
    left.
    """

    TRUTH, PENDING_NEW, PENDING_RERUN = "truth", "new", "rerun"

    def __init__(self, path: str, interval: float = METADATA_INTERVAL):
        self.path = path
        self.lock_path = path + ".lock"
        self.interval = interval
        self.error: Optional[BaseException] = None
        self._entries: Dict[str, Dict[str, Any]] = {}
        self._lines: Dict[str, str] = {}
        self._stamp: Optional[Tuple[int, ...]] = None
        self._pending: Dict[str, Tuple[Dict[str, Any], str]] = {}
        self._cond = threading.Condition()
        self._write_mutex = threading.Lock()
        self._closing = False
        self._thread: Optional[threading.Thread] = None
        self._last_write = float("-inf")
        self._gap = interval
        self.damaged: Optional[str] = None  # why the file could not be read, when it could not

    def load(self) -> Dict[str, Dict[str, Any]]:
        """The entries as the file has them now (empty if there is no file)."""
        self._reload()
        return self._entries

    def update(self, ident: str, entry: Dict[str, Any], kind: str = TRUTH) -> None:
        with self._cond:
            if kind == self.PENDING_NEW and ident in self._pending:
                return
            idle = not self._pending  # else the thread is already on its way to write
            self._pending[ident] = (entry, kind)
            if idle:
                self._cond.notify()

    def start(self) -> None:
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="metadata", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Keep the writer running for the block; flush everything when it ends, however."""
        self.start()
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        """Stop the writer thread and write every update it has not written yet."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def flush(self) -> None:
        """Write pending updates now (a StoreError if the file cannot be written)."""
        with self._cond:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        started = time.monotonic()
        try:
            with self._write_mutex:
                self._write(pending)
        except BaseException as e:
            with self._cond:
                for ident, update in pending.items():
                    self._pending.setdefault(ident, update)
            if isinstance(e, OSError):
                raise StoreError(f"{self.path}: cannot write it ({e.strerror or e})") from None
            raise
        finally:
            self._last_write = time.monotonic()
            self._gap = max(self.interval, (self._last_write - started) / WRITE_SHARE)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                deadline = self._last_write + self._gap
                while not self._closing:  # gather updates until the deadline or close()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closing:
                    return
            try:
                self.flush()
            except BaseException as e:  # a full disk: close() retries and reports it
                self.error = e
                return

    def _write(self, pending: Dict[str, Tuple[Dict[str, Any], str]]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with FileLock(self.lock_path):
            if _stamp(self.path) != self._stamp:  # another invocation wrote it since we did
                self._reload()
            changed = False
            for ident, (entry, kind) in pending.items():
                if _applies(entry, kind, self._entries.get(ident)):
                    self._entries[ident] = entry
                    self._lines.pop(ident, None)
                    changed = True
            if not changed:
                return
            lines = self._lines
            for ident, entry in self._entries.items():
                if ident not in lines:
                    lines[ident] = f"  {json.dumps(ident)}: {json.dumps(entry, default=str)}"
            body = ",\n".join(lines[i] for i in self._entries)
            text = "{\n" + body + "\n}\n" if body else "{}\n"
            write_atomic(self.path, text.encode())
            self._stamp = _stamp(self.path)

    def _reload(self) -> None:
        stamp = _stamp(self.path)
        try:
            data = read_json(self.path)
            if data is not None and not (isinstance(data, dict) and all(
                    isinstance(e, dict) for e in data.values())):
                raise DamagedFileError(self.path, "expected a JSON object of job id -> entry")
        except (DamagedFileError, UnsafePathError) as e:
            self.damaged = str(e)
            data = None
        old, lines = self._entries, self._lines
        data = data or {}
        self._lines = {i: lines[i] for i, e in data.items() if i in lines and old.get(i) == e}
        self._entries = data
        self._stamp = stamp


def _applies(entry: Dict[str, Any], kind: str, old: Optional[Dict[str, Any]]) -> bool:
    """Whether an update replaces the entry the file has (see MetadataFile)."""
    if not isinstance(old, dict):
        return True
    if kind == MetadataFile.PENDING_NEW:
        return False
    if kind == MetadataFile.PENDING_RERUN or old.get("status") == Status.PENDING.value:
        return True
    previous = old.get("updated")
    return not isinstance(previous, (int, float)) or entry["updated"] >= previous


def _stamp(path: str) -> Optional[Tuple[int, ...]]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class RunfileStore(TaskStore):
    """The directory of a runfile (`runs/<name>/`); the core's executor runs its jobs through it.

    A job is a task of one command, named by its id; its `job.json` is its state.
    """

    kind = "runfile"
    noun = "job"

    def __init__(self, directory: str, metadata_name: str = METADATA_FILE,
                 interval: float = METADATA_INTERVAL):
        self.root = self.dir = os.path.normpath(directory)
        self.logs_dir = os.path.join(self.dir, LOGS_DIR)
        self.metadata = MetadataFile(os.path.join(self.dir, metadata_name), interval)
        self._attempts: Dict[str, int] = {}
        self._new: set = set()  # jobs whose job.json was found missing under their lock

    def describe(self) -> Dict[str, Any]:
        return {"kind": self.kind, "root": self.dir,
                "metadata": os.path.basename(self.metadata.path)}

    def job_dir(self, ident: str) -> str:
        return os.path.join(self.logs_dir, ident)

    def job_file(self, ident: str) -> str:
        return os.path.join(self.logs_dir, ident, JOB_FILE)

    def read_job(self, ident: str) -> Optional[Dict[str, Any]]:
        """A job's `job.json` record, or None if it never started. DamagedFileError when it is
        not a record of a known status, UnsafePathError when it is a link."""
        path = self.job_file(ident)
        record = read_json(path)
        if record is not None:
            check_entry(record, path, "the job's record")
        return record

    # -- planning -----------------------------------------------------------------------------

    def split(self, jobs: List[Job], force: bool = False) -> Split:
        """Tasks of the runfile's jobs that are not done (all with `force`: `--mode overwrite`);
        queues metadata entries for jobs it has not seen.

        Reads `metadata.json` once, and the `job.json` only of jobs it does not show as done;
        what those say (newer after a crash) goes back into `metadata.json`. A damaged
        `metadata.json` is rebuilt from the `job.json` files (the split says so in its notes).
        """
        split = Split()
        entries = self.metadata.load()
        if self.metadata.damaged:
            split.notes[""] = f"{self.metadata.damaged}; rebuilt from {self.logs_dir}/*/{JOB_FILE}"
            self.rebuild()
            entries = {}
        todo: List[Job] = []
        now = time.time()
        for job in jobs:
            entry = entries.get(job.id)
            if not force and is_done(entry):
                split.done.append(job.to_task(parameters=False))
                continue
            try:
                record = self.read_job(job.id)
            except (DamagedFileError, UnsafePathError) as e:
                split.notes[job.id] = str(e)
                record = None
            if record is not None:
                public = make_public_entry(record)
                if public != entry:
                    self.metadata.update(job.id, public)
            if force:
                attempt = (record or {}).get("attempt") or 0
                self.metadata.update(job.id, make_pending_entry(job, attempt, now),
                                     MetadataFile.PENDING_RERUN)
            elif record is not None and is_done(record):
                split.done.append(job.to_task(parameters=False))
                continue
            elif entry is None and record is None:
                self.metadata.update(job.id, make_pending_entry(job), MetadataFile.PENDING_NEW)
            todo.append(job)
        split.todo = [(job.to_task(), [job.command]) for job in todo]
        return split

    def rebuild(self) -> None:
        """Queue every readable `job.json` for `metadata.json` (after it was found damaged)."""
        try:
            names = os.listdir(self.logs_dir)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            try:
                record = self.read_job(name)
            except (DamagedFileError, UnsafePathError):
                continue
            if record is not None:
                self.metadata.update(name, make_public_entry(record))

    # -- what the executor uses ---------------------------------------------------------------

    def lock(self, task: Task) -> FileLock:
        directory = self.job_dir(task.name)
        try:
            os.mkdir(directory)
        except FileExistsError:
            pass
        except FileNotFoundError:
            make_directory(directory)
        return FileLock(directory, directory=True)

    def read_state(self, task: Task) -> Dict[str, Any]:
        """command -> its `job.json` record (empty if the job never started)."""
        try:
            record = self.read_job(task.name)
        except DamagedFileError:
            self._attempts[task.name] = 0
            raise
        if record is None:
            self._new.add(task.name)  # no job.json: no earlier attempt's logs to keep either
        record = record or {}
        attempt = record.get("attempt")
        self._attempts[task.name] = attempt if type(attempt) is int else 0
        return {_command(task): record} if record else {}

    def check(self, task: Task) -> None:
        check_file(spare_path(self.job_file(task.name)))

    def write_state(self, task: Task, state: Dict[str, Any]) -> None:
        command = _command(task)
        record = dict(state[command])
        record.update(id=task.name, command=command, parameters=task.params,
                      attempt=self._attempts.get(task.name, 0), updated=time.time())
        write_owned(self.job_file(task.name), encode_json(record, indent=None, sort_keys=False),
                    exists=task.name not in self._new)
        self._new.discard(task.name)
        self.metadata.update(task.name, make_public_entry(record))

    def write_params(self, task: Task, command_lines: Dict[str, str]) -> None:
        """A new attempt begins: keep the previous attempt's logs as `out.log.N`/`err.log.N`."""
        if task.name not in self._new:
            rotate_logs(self.job_dir(task.name))
        self._attempts[task.name] = self._attempts.get(task.name, 0) + 1

    def log_paths(self, task: Task, command: str, datetime: str) -> Tuple[str, Optional[str]]:
        """(stdout log, stderr log) of the job's current attempt."""
        directory = self.job_dir(task.name)
        return os.path.join(directory, OUT_LOG), os.path.join(directory, ERR_LOG)

    def session(self):
        return self.metadata.writing()

    # -- reading back ---------------------------------------------------------------------------

    def states(self) -> List[TaskState]:
        """Every job of `metadata.json` and every job with a `job.json`; the `job.json` wins."""
        entries = self.metadata.load()
        idents = list(entries)
        try:
            idents += sorted(n for n in os.listdir(self.logs_dir) if n not in entries)
        except (FileNotFoundError, NotADirectoryError):
            pass
        states = [self._state(ident, entries.get(ident)) for ident in idents]
        return [s for s in states if s is not None]

    def state_of(self, name: str) -> TaskState:
        return self._state(name, self.metadata.load().get(name)) or TaskState(
            name, Status.PENDING, {}, {}, self.job_dir(name))

    def _state(self, ident: str, entry: Optional[Dict[str, Any]]) -> Optional[TaskState]:
        entry = entry if isinstance(entry, dict) else {}
        note = ""
        try:
            record = self.read_job(ident)
        except (DamagedFileError, UnsafePathError) as e:
            record, note = None, str(e)
        if record is None and not entry and not note:
            return None  # a directory in logs/ that is no job of ours
        data = dict(record or entry)
        command = data.get("command") or entry.get("command") or ""
        if data.get("status") == Status.RUNNING.value and is_stale(data):
            data["status"] = Status.INTERRUPTED.value
            data["note"] = "the invocation running it is gone"
        try:
            state = Status.UNREADABLE if note else entry_status(data)
        except ValueError:
            state = Status.UNREADABLE
            note = f"{self.metadata.path}: job {ident}: unknown status {data.get('status')!r}"
        parameters = data.get("parameters") or entry.get("parameters")
        return TaskState(ident, state, {command: data},
                         parameters if isinstance(parameters, dict) else {}, self.job_dir(ident),
                         note)


def rotate_logs(directory: str) -> Optional[int]:
    """Rename `out.log`/`err.log` to the next free `.N` (1 the oldest); the N used, or None."""
    present = [name for name in (OUT_LOG, ERR_LOG)
               if os.path.exists(os.path.join(directory, name))]
    if not present:
        return None
    used = [0]
    for name in os.listdir(directory):
        base, _, suffix = name.rpartition(".")
        if base in (OUT_LOG, ERR_LOG) and suffix.isdigit():
            used.append(int(suffix))
    number = max(used) + 1
    for name in present:
        os.replace(os.path.join(directory, name), os.path.join(directory, f"{name}.{number}"))
    return number


def _command(task: Task) -> str:
    return next(iter(task.commands))
