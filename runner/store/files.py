"""Files of state: the one atomic writer, the readers, the JSON encoders, and the file lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from runner.errors import StoreError

LOCK_FILE = ".lock"


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
