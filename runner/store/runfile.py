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

from runner.errors import StoreError
from runner.spec.runfile import Job
from runner.store.files import FileLock, encode_json, read_json, write_owned
from runner.store.sweep import is_done
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


def is_done_entry(entry: Optional[Dict[str, Any]]) -> bool:
    """Whether a `metadata.json` entry says the job succeeded (batchrun wrote `status: 0`)."""
    if not isinstance(entry, dict):
        return False
    status = entry.get("status")
    return status == Status.DONE.value or (
        isinstance(status, int) and not isinstance(status, bool) and status == 0)


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
            tmp = f"{self.path}.tmp.{os.getpid()}"
            try:
                with open(tmp, "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._stamp = _stamp(self.path)

    def _reload(self) -> None:
        stamp = _stamp(self.path)
        data = read_json(self.path)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise StoreError(f"{self.path}: expected a JSON object of job id -> entry; fix or "
                             f"delete the file")
        old, lines = self._entries, self._lines
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


class RunfileStore:
    """The output directory of a runfile; the core's executor runs its jobs through it."""

    def __init__(self, directory: str, metadata_name: str = METADATA_FILE,
                 interval: float = METADATA_INTERVAL):
        self.dir = os.path.normpath(directory)
        self.logs_dir = os.path.join(self.dir, LOGS_DIR)
        self.metadata = MetadataFile(os.path.join(self.dir, metadata_name), interval)
        self._attempts: Dict[str, int] = {}
        self._new: set = set()  # jobs whose job.json was found missing under their lock

    def job_dir(self, ident: str) -> str:
        return os.path.join(self.logs_dir, ident)

    def read_job(self, ident: str) -> Optional[Dict[str, Any]]:
        """A job's `job.json` record, or None if it never started."""
        return read_json(os.path.join(self.job_dir(ident), JOB_FILE))

    # -- planning -----------------------------------------------------------------------------

    def split_done(self, jobs: List[Job], overwrite: bool = False) -> Tuple[List[Job], List[Job]]:
        """(jobs to run, jobs done earlier); queues metadata entries for jobs it has not seen.

        Reads `metadata.json` once, and the `job.json` only of jobs it does not show as done;
        what those say (newer after a crash) goes back into `metadata.json`.
        """
        entries = self.metadata.load()
        todo: List[Job] = []
        done: List[Job] = []
        now = time.time()
        for job in jobs:
            entry = entries.get(job.id)
            if not overwrite and is_done_entry(entry):
                done.append(job)
                continue
            record = self.read_job(job.id)
            if record is not None:
                public = make_public_entry(record)
                if public != entry:
                    self.metadata.update(job.id, public)
            if overwrite:
                attempt = (record or {}).get("attempt") or 0
                self.metadata.update(job.id, make_pending_entry(job, attempt, now),
                                     MetadataFile.PENDING_RERUN)
            elif record is not None and is_done(record):
                done.append(job)
                continue
            elif entry is None and record is None:
                self.metadata.update(job.id, make_pending_entry(job), MetadataFile.PENDING_NEW)
            todo.append(job)
        return todo, done

    # -- what the executor uses ---------------------------------------------------------------

    def lock(self, task: Task) -> FileLock:
        """The job's lock (not yet acquired); creates the job's directory."""
        directory = self.job_dir(task.name)
        try:
            os.mkdir(directory)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(directory, exist_ok=True)
        return FileLock(directory)

    def read_state(self, task: Task) -> Dict[str, Any]:
        """command -> its `job.json` record (empty if the job never started)."""
        record = self.read_job(task.name)
        if record is None:
            self._new.add(task.name)  # no job.json: no earlier attempt's logs to keep either
        record = record or {}
        self._attempts[task.name] = record.get("attempt") or 0
        return {_command(task): record} if record else {}

    def write_state(self, task: Task, state: Dict[str, Any]) -> None:
        command = _command(task)
        record = dict(state[command])
        record.update(id=task.name, command=command, parameters=task.params,
                      attempt=self._attempts.get(task.name, 0), updated=time.time())
        write_owned(os.path.join(self.job_dir(task.name), JOB_FILE),
                    encode_json(record, indent=None, sort_keys=False),
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
