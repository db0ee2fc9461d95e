"""The files on disk: the atomic writer and locks, a sweep's output directory, a runfile's
directory (both behind the task-store contract of `runner.store.base`), and opening either."""

from __future__ import annotations

import os
from typing import Any, Dict

from runner.errors import StoreError
from runner.store.base import TaskStore


def open_store(description: Dict[str, Any]) -> TaskStore:
    """The store a task table's `store` describes."""
    kind = description.get("kind")
    if kind == "sweep":
        from runner.store.sweep import SweepStore

        return SweepStore(description["root"], no_param_dir=description.get("no_param_dir", False))
    if kind == "runfile":
        from runner.store.runfile import RunfileStore

        return RunfileStore(description["root"], description.get("metadata") or "metadata.json")
    raise StoreError(f"unknown kind of task directory {kind!r} in a task table")


def open_directory(path: str) -> TaskStore:
    """The store of an existing directory of any kind: a runfile's (`runs/<name>`: a
    `metadata.json` or `logs/`) or a sweep's output. StoreError when there is no directory."""
    if not os.path.isdir(path):
        raise StoreError(f"-o {path}: no such output directory; pass the directory a run wrote "
                         f"with -o DIR (or a launch's runs/<name>)")
    from runner.store.runfile import LOGS_DIR, METADATA_FILE, RunfileStore

    if os.path.isfile(os.path.join(path, METADATA_FILE)) or os.path.isdir(
            os.path.join(path, LOGS_DIR)):
        return RunfileStore(path)
    from runner.store.sweep import SweepStore

    return SweepStore(path)
