"""Every path and file format of an output directory; atomic JSON; per-task locks; "is it done?".

The tree of one output directory::

    <output>/<params.yaml>              copy of the config (`<basename>.<title>` with -t)
    <output>/<name>/param.json          every param of the task and its command lines
    <output>/<name>/stat.json           per command: code, status, times, slot, host, pid
    <output>/<name>/log.<cmd>.<dt>      one log per command per invocation
    <output>/<name>/.stat.json.next     the spare that the next stat.json is written into
    <output>/.runner/runs/<id>.json     task table of one invocation: the tasks it set out to run
    <output>/.slurm/<id>/               one SLURM submission: scripts, task tables, job ids

With `--no-param-dir`, logs are `<output>/log.<cmd>.<dt>.<name>` and the task's state lives in
`<output>/.runner/tasks/<name>/`. "Done" always means that `stat.json` says so.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from runner.errors import StoreError
from runner.task import Status, Task

PARAM_FILE = "param.json"
STAT_FILE = "stat.json"
LOCK_FILE = ".lock"
STATE_DIR = ".runner"
TASK_STATE_DIR = os.path.join(STATE_DIR, "tasks")
RUNS_DIR = os.path.join(STATE_DIR, "runs")
SLURM_DIR = ".slurm"  # submissions of --backend slurm (runner.backends.slurm_backend)
HOST = socket.gethostname()


def _load_renameat2() -> Optional[Callable[[str, str], int]]:
    """`renameat2(..., RENAME_EXCHANGE)` from the C library (Linux), or None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint]

    def exchange(a: str, b: str) -> int:
        if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE):
            return ctypes.get_errno()
        return 0

    return exchange


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_exchange = _load_renameat2() if sys.platform.startswith("linux") else None


def _install(new: str, path: str) -> bool:
    """Put the finished file `new` in place of `path` in one atomic step.

    True when the two were exchanged (`new` now holds the old content), False when `new` was
    renamed (nothing to exchange with, or a file system without RENAME_EXCHANGE, such as NFS).
    A plain rename over an existing file makes ext4 write the new file's data at once
    (auto_da_alloc), which costs more than the rest of a task's bookkeeping together.
    """
    global _exchange
    if _exchange is not None:
        error = _exchange(new, path)
        if error == 0:
            return True
        if error == errno.ENOENT:  # nothing to exchange with yet
            os.rename(new, path)
            return False
        if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            _exchange = None  # this file system cannot: rename as usual from now on
        else:
            raise OSError(error, os.strerror(error), path)
    os.replace(new, path)
    return False


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` so that a reader sees the old content or the new, never half of either."""
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_fd(fd, data)
        finally:
            os.close(fd)
        if _install(tmp, path):
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def spare_path(path: str) -> str:
    """Where `write_owned` prepares the next content of `path`."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.next")


def write_owned(path: str, data: bytes, spare: Optional[str] = None,
                exists: bool = True) -> None:
    """`write_atomic` for a file whose only writer is the caller (it holds the task's lock).

    The new content is written into a spare file beside `path` (`.<name>.next`), overwritten in
    place, and exchanged with `path`; the old content becomes the next spare. No file is
    created or deleted after the first two writes: on ext4 without a journal, every recently
    deleted inode slows each later file creation down (the allocator checks them one by one).
    `exists=False`: the caller knows `path` is not there yet, so it is simply renamed into place.
    """
    spare = spare or spare_path(path)
    try:
        fd, new = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), True
    except FileExistsError:
        fd, new = os.open(spare, os.O_WRONLY | os.O_CLOEXEC), False
    try:
        _write_fd(fd, data)  # not O_TRUNC: emptying a file also makes ext4 flush it on close
        if not new:
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    if exists:
        _install(spare, path)
    else:  # known not to be there yet (the caller just failed to read it): nothing to exchange
        os.rename(spare, path)


def encode_json(data: Any, indent: Optional[int] = 4, sort_keys: bool = True) -> bytes:
    return (json.dumps(data, indent=indent, sort_keys=sort_keys, default=str) + "\n").encode()


def write_json(path: str, data: Any, indent: Optional[int] = 4, sort_keys: bool = True) -> None:
    """Write a JSON file atomically (see `write_atomic`)."""
    write_atomic(path, encode_json(data, indent, sort_keys))


_ENCODER = json.JSONEncoder(default=str)  # one line, C-accelerated
_SCALARS = (str, int, float, bool, type(None))


def encode_state(state: Dict[str, Any]) -> bytes:
    """`stat.json`'s text: one line per command, in the order the commands ran."""
    encode = _ENCODER.encode
    lines = [f"    {encode(name)}: {encode(entry)}" for name, entry in state.items()]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode() if lines else b"{}\n"


def _encode_indented(value: Any) -> str:
    """`json.dumps(value, indent=4, sort_keys=True)` of a value one level down in a mapping."""
    if isinstance(value, _SCALARS):
        return _ENCODER.encode(value)
    if isinstance(value, dict) and value and all(isinstance(v, _SCALARS) for v in value.values()
                                                  ) and all(isinstance(k, str) for k in value):
        encode = _ENCODER.encode
        return "{\n" + ",\n".join(f"        {encode(k)}: {encode(value[k])}"
                                   for k in sorted(value)) + "\n    }"
    return json.dumps(value, indent=4, sort_keys=True, default=str).replace("\n", "\n    ")


def encode_params(params: Dict[str, Any]) -> bytes:
    """`param.json`'s text, exactly as `json.dumps(params, indent=4, sort_keys=True)` writes it,
    at a fraction of the cost (Python's indenting encoder has no C version)."""
    if not params or not all(isinstance(k, str) for k in params):
        return encode_json(params)
    encode = _ENCODER.encode
    lines = [f"    {encode(k)}: {_encode_indented(params[k])}" for k in sorted(params)]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def read_bytes(path: str) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_json(path: str) -> Optional[Any]:
    """The parsed file, or None when it does not exist."""
    data = read_bytes(path)
    if data is None:
        return None
    if not data.strip():  # what a power cut can leave of a file written just before it
        return None
    try:
        return json.loads(data)
    except ValueError as e:
        raise StoreError(f"{path}: not valid JSON ({e}); fix or delete the file") from None


def is_done(entry: Optional[Dict[str, Any]]) -> bool:
    """A command is done only when its `stat.json` entry says it succeeded."""
    return bool(entry) and entry.get("code") == 0 and entry.get("status", "done") == "done"


class TaskPaths:
    """Where one task's files live."""

    __slots__ = ("dir", "param", "stat", "log_dir", "log_suffix", "param_spare", "stat_spare",
                 "missing")

    def __init__(self, output: str, name: str, no_param_dir: bool = False):
        sep = os.sep
        if no_param_dir:
            self.dir = f"{output}{sep}{TASK_STATE_DIR}{sep}{name}"
            self.log_dir = output
            self.log_suffix = "." + name
        else:
            self.dir = f"{output}{sep}{name}"
            self.log_dir = self.dir
            self.log_suffix = ""
        self.param = f"{self.dir}{sep}{PARAM_FILE}"
        self.stat = f"{self.dir}{sep}{STAT_FILE}"
        self.param_spare = f"{self.dir}{sep}.{PARAM_FILE}.next"
        self.stat_spare = f"{self.dir}{sep}.{STAT_FILE}.next"
        self.missing: set = set()  # files a read under the task's lock found absent

    def log(self, command: str, datetime: str) -> str:
        return f"{self.log_dir}{os.sep}log.{command}.{datetime}{self.log_suffix}"


def existing_output(output: str) -> str:
    """`output` if it is a directory, else a StoreError that says what to pass instead."""
    if not os.path.isdir(output):
        raise StoreError(f"-o {output}: no such output directory; pass the directory a run wrote "
                         f"with -o DIR")
    return output


class Store:
    """One output directory of the YAML runner.

    The executor talks to a store only through `lock`, `read_state`, `write_state`,
    `write_params` and `log_paths`, so another layout (a runfile's `metadata.json`) is another
    class with these five methods.
    """

    def __init__(self, output: str, no_param_dir: bool = False):
        self.output = os.path.normpath(output)
        self.no_param_dir = no_param_dir
        self._paths: Dict[str, TaskPaths] = {}

    def paths(self, name: str) -> TaskPaths:
        paths = self._paths.get(name)
        if paths is None:
            if len(self._paths) >= 256:  # a task asks several times in a row; keep only recent
                self._paths.clear()
            paths = self._paths[name] = TaskPaths(self.output, name, self.no_param_dir)
        return paths

    def read_stat(self, name: str) -> Dict[str, Any]:
        if self.no_param_dir:
            return read_json(self.paths(name).stat) or {}
        return read_json(f"{self.output}{os.sep}{name}{os.sep}{STAT_FILE}") or {}

    # -- what the executor uses ---------------------------------------------------------------

    def lock(self, task: Task) -> "FileLock":
        """The task's lock (not yet acquired); creates the task's directory."""
        paths = self.paths(task.name)
        try:
            os.mkdir(paths.dir)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(paths.dir, exist_ok=True)
        return FileLock(paths.dir)

    def read_state(self, task: Task) -> Dict[str, Any]:
        """command -> its `stat.json` entry."""
        paths = self.paths(task.name)
        state = read_json(paths.stat)
        if state is None:
            paths.missing.add(STAT_FILE)
        return state or {}

    def write_state(self, task: Task, state: Dict[str, Any]) -> None:
        paths = self.paths(task.name)
        write_owned(paths.stat, encode_state(state), paths.stat_spare,
                    STAT_FILE not in paths.missing)
        paths.missing.discard(STAT_FILE)

    def write_params(self, task: Task, command_lines: Dict[str, str]) -> None:
        """`param.json`: the params and `_commands`, keeping other commands' earlier lines."""
        paths = self.paths(task.name)
        old = read_json(paths.param)
        lines = dict(old.get("_commands", {})) if isinstance(old, dict) else {}
        lines.update(command_lines)
        write_owned(paths.param, encode_params({**task.params, "_commands": lines}),
                    paths.param_spare, old is not None)

    def log_paths(self, task: Task, command: str, datetime: str) -> Tuple[str, Optional[str]]:
        """(log of stdout, log of stderr or None when stderr goes to the same log)."""
        return self.paths(task.name).log(command, datetime), None

    def pending_commands(self, task: Task, force: bool = False) -> List[str]:
        """The task's commands that still have to run (all of them with `force`)."""
        if force:
            return list(task.commands)
        stat = self.read_stat(task.name)
        return [c for c in task.commands if not is_done(stat.get(c))]

    def run_table_path(self, run_id: str) -> str:
        return os.path.join(self.output, RUNS_DIR, f"{run_id}.json")

    def write_run_table(self, run_id: str, tasks: List[Task], info: Dict[str, Any]) -> str:
        """Record the tasks an invocation sets out to run, so `run status` can list pending ones."""
        path = self.run_table_path(run_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_json(path, make_task_table(self.output, self.no_param_dir, tasks, info), indent=None,
                   sort_keys=False)
        return path

    def iter_run_tables(self) -> Iterator[Dict[str, Any]]:
        directory = os.path.join(self.output, RUNS_DIR)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".json"):
                table = read_json(os.path.join(directory, name))
                if table:
                    yield table

    def iter_task_dirs(self) -> Iterator[str]:
        """Directories that hold a `param.json` or `stat.json`, in either layout."""
        for base in (self.output, os.path.join(self.output, TASK_STATE_DIR)):
            try:
                entries = sorted(os.scandir(base), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir():
                    continue
                if (os.path.exists(os.path.join(entry.path, STAT_FILE))
                        or os.path.exists(os.path.join(entry.path, PARAM_FILE))):
                    yield entry.path


def make_task_table(output: str, no_param_dir: bool, tasks: List[Task],
                    info: Dict[str, Any]) -> Dict[str, Any]:
    """The self-contained description of tasks that `run exec-task` executes anywhere."""
    return {"version": 1, "output": output, "no_param_dir": no_param_dir, "cwd": os.getcwd(),
            **info, "tasks": [t.to_json() for t in tasks]}


def load_task_table(path: str) -> Dict[str, Any]:
    table = read_json(path)
    if not isinstance(table, dict) or "tasks" not in table:
        raise StoreError(f"{path}: not a task table (expected a JSON object with 'tasks')")
    return table


class FileLock:
    """An exclusive lock between processes: the per-task lock that keeps two invocations from
    running one task at the same time, and the lock around shared files such as `metadata.json`.

    An exclusive `flock` held through an open descriptor, so the kernel drops it when the holder
    dies, however it dies: a crash never leaves a task locked. `path` is a file (created if
    needed) or a directory; a directory is locked itself, which costs no file, and where the
    file system cannot lock directories (NFS emulates `flock` with POSIX locks, which need a
    file open for writing) the file `.lock` inside it is locked instead, by every process alike.
    """

    _directories_lockable = True  # until a file system says otherwise

    def __init__(self, path: str):
        self.path = path
        self._fd: Optional[int] = None

    def _open(self) -> Tuple[int, bool]:
        """A descriptor to lock, and whether it is the directory itself."""
        if os.path.isdir(self.path):
            if FileLock._directories_lockable:
                return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), True
            path = os.path.join(self.path, LOCK_FILE)
        else:
            path = self.path
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644), False

    def try_acquire(self, timeout: float = 0, poll: float = 0.05) -> bool:
        """Take the lock, waiting up to `timeout` seconds; False if another holder keeps it."""
        fd, directory = self._open()
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(poll)
            except OSError as e:
                os.close(fd)
                if not directory or e.errno not in (errno.EBADF, errno.ENOLCK, errno.EOPNOTSUPP,
                                                    errno.EINVAL):
                    raise
                FileLock._directories_lockable = False  # NFS: lock `.lock` in it from now on
                fd, directory = self._open()

    def __enter__(self) -> "FileLock":
        while not self.try_acquire(timeout=3600):
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def summarize_commands(stat: Dict[str, Any], commands: List[str]) -> Status:
    """One state for a task from its commands' entries (running > failed > ... > done)."""
    states = [Status(stat[c].get("status", "done" if stat[c].get("code") == 0 else "failed"))
              if c in stat else Status.PENDING for c in commands]
    for status in (Status.RUNNING, Status.FAILED, Status.TIMEOUT, Status.INTERRUPTED,
                   Status.PENDING):
        if status in states:
            return status
    return Status.DONE
