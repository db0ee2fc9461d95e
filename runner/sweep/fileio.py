"""Reading and writing text, pickle and JSON files, with psweep's names.

Every whole-file write goes through the project's one atomic writer,
`runner.store.files.write_atomic`: a reader (or a crash) sees the old content or the new, never
half of either, and no file is written through a link. Folders are created as psweep does.
"""

from __future__ import annotations

import json
import locale
import os
import pickle
from typing import Any

from runner.store.files import write_atomic
from runner.sweep.helpers import makedirs


def write_bytes(fn: str, data: bytes) -> None:
    """Create `fn`'s folder, then replace `fn` atomically by `data`."""
    makedirs(os.path.dirname(fn))
    write_atomic(fn, data)


def encode_text(txt: str) -> bytes:
    """`txt` as open(fn, "w") would write it; characters the encoding lacks become &#NNN;."""
    encoding = locale.getpreferredencoding(False)
    try:
        return txt.encode(encoding)
    except UnicodeEncodeError:
        return txt.encode("ascii", errors="xmlcharrefreplace")


def file_write(fn: str, txt: str, mode: str = "w") -> None:
    """Write (mode "w", atomically) or append (mode "a") text, creating the folder."""
    if mode == "w":
        write_bytes(fn, encode_text(txt))
        return
    makedirs(os.path.dirname(fn))
    with open(fn, mode) as fd:
        try:
            fd.write(txt)
        except UnicodeEncodeError:
            fd.write(txt.encode("ascii", errors="xmlcharrefreplace").decode())


def file_read(fn: str) -> str:
    with open(fn) as fd:
        return fd.read()


def pickle_write(fn: str, obj: Any) -> None:
    write_bytes(fn, pickle.dumps(obj))


def pickle_read(fn: str) -> Any:
    with open(fn, "rb") as fd:
        return pickle.load(fd)


def json_write(fn: str, obj: Any) -> None:
    file_write(fn, json.dumps(obj, indent=2))


def json_read(fn: str) -> Any:
    with open(fn) as fd:
        return json.load(fd)
