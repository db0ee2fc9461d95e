"""Reading and writing text, pickle and JSON files; every write is atomic."""

from __future__ import annotations

import json
import os
import pickle
import uuid
from typing import IO, Any, Callable

from runner.sweep.helpers import makedirs


def write_atomic(fn: str, write: Callable[[IO], None], binary: bool = False) -> None:
    """Create `fn`'s folder, call `write(fd)` on a temporary file beside `fn`, then os.replace it.

    A reader (or a crash) never sees a half-written `fn`. The temporary file is created with the
    process umask, like a plain open(), so permissions are the same as without this.
    """
    dirname = os.path.dirname(fn)
    makedirs(dirname)
    tmp = os.path.join(dirname, f".{os.path.basename(fn)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb" if binary else "x") as fd:
            write(fd)
        os.replace(tmp, fn)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def file_write(fn: str, txt: str, mode: str = "w") -> None:
    """Write (mode "w") or append (mode "a") text; characters the encoding lacks become &#NNN;."""

    def write(fd: IO) -> None:
        try:
            fd.write(txt)
        except UnicodeEncodeError:
            fd.write(txt.encode("ascii", errors="xmlcharrefreplace").decode())

    if mode == "w":
        write_atomic(fn, write)
    else:
        makedirs(os.path.dirname(fn))
        with open(fn, mode) as fd:
            write(fd)


def file_read(fn: str) -> str:
    with open(fn) as fd:
        return fd.read()


def pickle_write(fn: str, obj: Any) -> None:
    write_atomic(fn, lambda fd: pickle.dump(obj, fd), binary=True)


def pickle_read(fn: str) -> Any:
    with open(fn, "rb") as fd:
        return pickle.load(fd)


def json_write(fn: str, obj: Any) -> None:
    file_write(fn, json.dumps(obj, indent=2))


def json_read(fn: str) -> Any:
    with open(fn) as fd:
        return json.load(fd)
