"""Small helpers psweep users call: shell commands, paths, sequences, UUIDs."""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from io import IOBase
from typing import Any, Callable, Iterable, Iterator, Sequence

from runner.sweep.errors import SweepError


def system(cmd: str, **kwds: Any) -> subprocess.CompletedProcess:
    """Run `cmd` in a shell, stdout and stderr together; raise CalledProcessError on failure.

    The command's output is attached to the error as a note, so it shows in the traceback.
    """
    try:
        return subprocess.run(
            cmd, shell=True, check=True, stderr=subprocess.STDOUT, stdout=subprocess.PIPE, **kwds
        )
    except subprocess.CalledProcessError as ex:
        out = ex.stdout.decode(errors="replace") if isinstance(ex.stdout, bytes) else ex.stdout
        ex.add_note(f"output of {cmd!r}:\n{out}")
        raise


def makedirs(path: str) -> None:
    """Create `path` and its parents; an empty path does nothing."""
    if path.strip():
        os.makedirs(path, exist_ok=True)


def fullpath(path: str) -> str:
    """Absolute path with `~` expanded."""
    return os.path.abspath(os.path.expanduser(path))


def is_seq(seq: Any) -> bool:
    """True for iterables other than str, dict and file objects."""
    if isinstance(seq, (str, dict, IOBase)):
        return False
    try:
        iter(seq)
    except TypeError:
        return False
    return True


def itr(func: Callable) -> Callable:
    """Let `func(seq)` also be called as `func(a, b, c)`; one non-sequence `a` becomes `[a]`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwds: Any) -> Any:
        if len(args) == 1:
            arg = args[0]
            return func(arg if is_seq(arg) else [arg], **kwds)
        return func(args, **kwds)

    return wrapper


def flatten(seq: Iterable) -> Iterator:
    """Yield the non-sequence items of arbitrarily nested sequences, depth first."""
    for item in seq:
        if is_seq(item):
            yield from flatten(item)
        else:
            yield item


def flatten_dict(dct: dict, join_str: str = "_") -> dict:
    """Flatten nested dicts, joining the str-converted keys: {'b': {'c': 2}} -> {'b_c': 2}."""
    out: dict = {}

    def walk(sub: dict, prefix: Any) -> None:
        for key, val in sub.items():
            joined = key if prefix is None else f"{prefix}{join_str}{key}"
            if isinstance(val, dict):
                walk(val, joined)
            else:
                out[joined] = val

    walk(dct, None)
    return out


def get_uuid(retry: int = 10, existing: Sequence = ()) -> str:
    """A uuid4 string not in `existing`."""
    taken = set(existing)
    for _ in range(max(retry, 1)):
        ret = str(uuid.uuid4())
        if ret not in taken:
            return ret
    raise SweepError(f"failed to generate a UUID not in `existing` after {retry} attempts")


def get_many_uuids(num: int, retry: int = 10, existing: Sequence = ()) -> list[str]:
    """`num` distinct uuid4 strings, none of them in `existing`."""
    taken = set(existing)
    for _ in range(max(retry, 1)):
        ret = {str(uuid.uuid4()) for _ in range(num)}
        if len(ret) == num and not ret & taken:
            return list(ret)
    raise SweepError(f"failed to generate {num} distinct new UUIDs after {retry} attempts")
