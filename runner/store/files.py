"""Files of state: the one atomic writer, the readers, the JSON encoders, and the file lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from runner.errors import DamagedFileError, UnsafePathError, WriteError

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


def describe_unsafe(mode: int) -> Optional[str]:
    """What is wrong with writing to a file of this mode, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO, not a regular file"
    return "is a device or socket, not a regular file"


def check_file(path: str) -> None:
    """UnsafePathError when something other than a regular file is at `path` (nothing is fine)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    problem = describe_unsafe(mode)
    if problem:
        raise UnsafePathError(path, problem)


def check_directory(path: str) -> None:
    """UnsafePathError when `path` is there but is not a directory of its own (a link, a file)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise UnsafePathError(path, "is a symbolic link")
    if not stat.S_ISDIR(mode):
        raise UnsafePathError(path, "is not a directory")


def make_directory(path: str) -> None:
    """Create the directory `path` (and missing parents); UnsafePathError if a link or a file
    stands there instead. Only directories the runner owns inside an output directory come
    here, so a link in their place was not made by the runner and is never followed."""
    try:
        os.mkdir(path)
        return
    except FileExistsError:
        pass
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent and parent != path:
            make_directory(parent)
        try:
            os.mkdir(path)
            return
        except FileExistsError:
            pass
    check_directory(path)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REWRITE = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _create(path: str) -> int:
    """A new, empty file of our own at `path` (a leftover of ours there is removed first)."""
    try:
        return os.open(path, _CREATE, 0o644)
    except FileExistsError:
        check_file(path)
        os.unlink(path)  # unlink removes a name; it never follows a link
        return os.open(path, _CREATE, 0o644)


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` so that a reader sees the old content or the new, never half of either.

    The one writer of every file the project writes. It never writes through what stands at
    `path`: a link, FIFO, device or directory there is an UnsafePathError; a file with other
    hard links (a `cp -al` backup) is replaced by a new file, never changed. An error of the
    operating system (a full disk, no permission) is a WriteError that names the path.
    """
    try:
        check_file(path)
        tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
        fd = _create(tmp)
        try:
            try:
                _write_fd(fd, data)
            finally:
                os.close(fd)
            if _install(tmp, path):
                os.unlink(tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise WriteError(path, e) from None


def spare_path(path: str) -> str:
    """Where `write_owned` prepares the next content of `path`."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.next")


def _open_spare(spare: str) -> Tuple[int, bool]:
    """(descriptor, whether new) of the spare to write into: the existing one when it is a
    regular file with no other hard link, else a new file in its place."""
    try:
        return os.open(spare, _CREATE, 0o644), True
    except FileExistsError:
        pass
    try:
        fd = os.open(spare, _REWRITE)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENOTDIR):
            check_file(spare)
            raise UnsafePathError(spare, "is not a regular file") from None
        raise
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        return fd, False
    os.close(fd)
    problem = describe_unsafe(info.st_mode)
    if problem:
        raise UnsafePathError(spare, problem)
    os.unlink(spare)  # other hard links share it (a `cp -al` copy): leave theirs alone
    return os.open(spare, _CREATE, 0o644), True


def write_owned(path: str, data: bytes, spare: Optional[str] = None,
                exists: bool = True) -> None:
    """`write_atomic` for a file whose only writer is the caller (it holds the task's lock).

    The new content is written into a spare file beside `path` (`.<name>.next`), overwritten in
    place, and exchanged with `path`; the old content becomes the next spare. No file is
    created or deleted after the first two writes: on ext4 without a journal, every recently
    deleted inode slows each later file creation down (the allocator checks them one by one).
    A spare that is not a regular file of its own is never written into (see `write_atomic`).
    `exists=False`: the caller knows `path` is not there yet, so it is simply renamed into place.
    """
    spare = spare or spare_path(path)
    try:
        fd, new = _open_spare(spare)
        try:
            _write_fd(fd, data)  # not O_TRUNC: emptying a file also makes ext4 flush it on close
            if not new:
                os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
        if exists:
            _install(spare, path)
        else:  # known not to be there yet (the caller just failed to read it)
            os.rename(spare, path)
    except OSError as e:
        raise WriteError(path, e) from None


def open_append(path: str) -> int:
    """A log open for appending: created if new; never a link or a special file, and never a
    file shared with a hard-linked copy (that one is copied first, so the copy stays as it was)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            check_file(path)
            raise UnsafePathError(path, "is not a regular file") from None
        raise WriteError(path, e) from None
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        return fd
    os.close(fd)
    problem = describe_unsafe(info.st_mode)
    if problem:
        raise UnsafePathError(path, problem)
    write_atomic(path, read_bytes(path) or b"")  # a file of our own with the same content
    return open_append(path)


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


MAX_STATE_BYTES = 256 * 2 ** 20  # a state file larger than this is damaged, not read


def read_bytes(path: str, limit: int = MAX_STATE_BYTES) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist.

    Never through a link and never from a FIFO or device (UnsafePathError), never more than
    `limit` bytes (DamagedFileError): state files are read, not trusted.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(path, "is a symbolic link") from None
        raise DamagedFileError(path, f"cannot read it ({e.strerror or e})") from None
    try:
        info = os.fstat(fd)
        problem = describe_unsafe(info.st_mode)
        if problem:
            raise UnsafePathError(path, problem)
        if info.st_size > limit:
            raise DamagedFileError(path, f"{info.st_size} bytes, more than a state file holds "
                                         f"({limit} at most)")
        chunks = []
        size = 0
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise DamagedFileError(path, f"more than {limit} bytes")
            chunks.append(chunk)
    except OSError as e:
        raise DamagedFileError(path, f"cannot read it ({e.strerror or e})") from None
    finally:
        os.close(fd)


def read_json(path: str, limit: int = MAX_STATE_BYTES) -> Optional[Any]:
    """The parsed file, or None when it does not exist or is empty (what a power cut can leave
    of a file written just before it). DamagedFileError when it is not JSON (or nested too
    deep to read), UnsafePathError when it is a link or a special file."""
    data = read_bytes(path, limit)
    if data is None or not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        reason = "nested too deep" if isinstance(e, RecursionError) else str(e)
        raise DamagedFileError(path, f"not valid JSON ({reason})") from None


def read_tail(path: Optional[str], count: int = 5, block: int = 16384) -> List[str]:
    """The last `count` lines of a log (at most `block` bytes read; empty when it cannot be
    read). Never through a link, never from a FIFO."""
    if not isinstance(path, str) or not path:
        return []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        size = os.lseek(fd, 0, os.SEEK_END)
        os.lseek(fd, max(0, size - block), os.SEEK_SET)
        data = os.read(fd, block)
    except OSError:
        return []
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").splitlines()[-count:]


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

    def __init__(self, path: str, directory: Optional[bool] = None):
        self.path = path
        self.directory = os.path.isdir(path) if directory is None else directory
        self._fd: Optional[int] = None

    def _open(self) -> Tuple[int, bool]:
        """A descriptor to lock, and whether it is the directory itself. Never through a link:
        a link or a file where the directory should be is an UnsafePathError."""
        try:
            if self.directory:
                if FileLock._directories_lockable:
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                    return os.open(self.path, flags), True
                check_directory(self.path)
                path = os.path.join(self.path, LOCK_FILE)
            else:
                path = self.path
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR):
                check_directory(self.path) if self.directory else check_file(self.path)
                raise UnsafePathError(self.path, "is not a directory" if self.directory else
                                      "is not a regular file") from None
            raise WriteError(self.path, e) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePathError(path, "is not a regular file")
        return fd, False

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
