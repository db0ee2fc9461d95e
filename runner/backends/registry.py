"""The registry of engines: their names, where their classes live, where they keep records.

Importing this module is cheap (`run --help` lists the engines); an engine's module is imported
only when `load_engine` is asked for it.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List

from runner.errors import UsageError, choices_text

if TYPE_CHECKING:  # pragma: no cover
    from runner.backends.base import Engine
    from runner.store.base import TaskStore


@dataclass(frozen=True)
class EngineEntry:
    """Where an engine's class lives and where, under a task directory, it keeps its records
    (so that `run status` and `run cancel` ask only the engines that ran something there)."""

    target: str  # "module:class"
    records: str  # a directory relative to the task directory's root
    description: str


ENGINES: Dict[str, EngineEntry] = {
    "local": EngineEntry("runner.backends.local:LocalEngine", os.path.join(".runner", "runs"),
                         "here, one worker per slot"),
    "slurm": EngineEntry("runner.backends.slurm.engine:SlurmEngine", ".slurm",
                         "SLURM job arrays"),
    "dask": EngineEntry("runner.backends.dask.engine:DaskEngine", ".dask",
                        "the workers of a dask.distributed scheduler (run worker)"),
}


def load_engine(name: str) -> "Engine":
    """An instance of the engine called `name`."""
    entry = ENGINES.get(name)
    if entry is None:
        raise UsageError(f"--backend {name}: unknown engine; choose one of "
                         f"{choices_text(ENGINES)}")
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def engines_in(store: "TaskStore") -> List["Engine"]:
    """The engines that keep records in this task directory (they ran or submitted tasks)."""
    return [load_engine(name) for name, entry in ENGINES.items()
            if os.path.isdir(os.path.join(store.root, entry.records))]
