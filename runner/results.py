"""A task directory as one table: params, state, timings and metrics per task.

Each row is a task (or a runfile's job): its params as written to `param.json` (a job's
parameters), book-keeping columns that start with `_` (`_name`, `_state`, `_start`, `_end`,
`_runtime`, `_gpus`, `_host`, and per command `_<command>_status` / `_<command>_exit_status` /
`_<command>_duration`; a job has `_command` and `_job_...`), then whatever the task wrote to
`metrics.json` in its directory (nested keys joined with `.`; a metric whose name is also a param
gets a trailing `_`). One task never spoils the table: a `metrics.json` that is being written,
invalid, not an object or nested too deep leaves that row without metrics, with a warning.
pandas is needed only for `read_results`: `pip install '.[sweep]'`.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from runner.errors import DamagedFileError, MissingDependencyError, UnsafePathError
from runner.store.files import read_json
from runner.store.state import TaskState

METRICS_FILE = "metrics.json"
MAX_METRICS_BYTES = 16 * 2 ** 20
MAX_DEPTH = 20  # levels of nesting of metrics.json flattened into columns


def natural_key(text: str) -> List[Any]:
    """`Bs_8` before `Bs_16`: digits compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)]


def collect_states(output: str):
    """(store, states) of a task directory of any kind: its files, refined by the engines that
    ran its tasks (the queue of a SLURM submission), in natural order of name."""
    from runner.backends.registry import engines_in
    from runner.store import open_directory

    store = open_directory(output)
    states = store.states()
    for engine in engines_in(store):
        states = engine.refine(store, states)
    return store, sorted(states, key=lambda s: natural_key(s.name))


def flatten(data: Dict[str, Any], prefix: str = "", depth: int = 0) -> Dict[str, Any]:
    """{'val': {'loss': 1}} -> {'val.loss': 1} (ValueError below MAX_DEPTH levels)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    out: Dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + ".", depth + 1))
        else:
            out[name] = value
    return out


def read_metrics(directory: str) -> Tuple[Dict[str, Any], Optional[str]]:
    """(metrics, None) from a task's `metrics.json` ({} when there is none), or ({}, why not)."""
    path = os.path.join(directory, METRICS_FILE)
    try:
        data = read_json(path, limit=MAX_METRICS_BYTES)
        if data is None:
            return {}, None
        if not isinstance(data, dict):
            return {}, f"{path}: expected a JSON object of metrics, found {type(data).__name__}"
        return flatten(data), None
    except (DamagedFileError, UnsafePathError) as e:
        return {}, str(e)
    except ValueError as e:
        return {}, f"{path}: {e}"


class Row(NamedTuple):
    """One task: its params, its book-keeping columns, its metrics."""

    params: Dict[str, Any]
    book: Dict[str, Any]
    metrics: Dict[str, Any]

    def as_dict(self) -> Dict[str, Any]:
        return {**self.params, **self.book, **self.metrics}


def make_row(state: TaskState, jobs: bool = False) -> Tuple[Row, Optional[str]]:
    """A task's row, and a warning when its metrics could not be read."""
    params = {k: v for k, v in state.params.items() if not k.startswith("_")}
    entries = [e for e in state.commands.values() if isinstance(e, dict) and e.get("start")]
    book: Dict[str, Any] = {
        "_name": state.name,
        "_state": state.state.value,
        "_start": min((str(e["start"]) for e in entries), default=None),
        "_end": max((str(e.get("end") or "") for e in entries), default="") or None,
        "_runtime": sum(e.get("duration") or 0 for e in entries
                        if isinstance(e.get("duration") or 0, (int, float))) if entries else None,
        "_gpus": next((e["gpus"] for e in entries if e.get("gpus") is not None), None),
        "_host": next((e["host"] for e in entries if e.get("host")), None),
    }
    if jobs:
        book["_command"] = next(iter(state.commands), None)
    else:
        book["_output"] = state.params.get("_output")
        book["_datetime"] = state.params.get("_datetime")
    for command, entry in state.commands.items():
        label = "job" if jobs else command
        entry = entry if isinstance(entry, dict) else {}
        book[f"_{label}_status"] = entry.get("status")
        book[f"_{label}_exit_status"] = entry.get("exit_status")
        book[f"_{label}_duration"] = entry.get("duration")
    if state.note:
        book["_note"] = state.note
    found, warning = read_metrics(state.dir) if state.dir else ({}, None)
    metrics = {(f"{k}_" if k in params else k): v for k, v in found.items()}
    return Row(params, book, metrics), warning


def collect_rows(output: str, warnings: Optional[List[str]] = None) -> List[Row]:
    """One row per task of the task directory (no pandas needed); warnings about single rows
    are appended to `warnings`."""
    store, states = collect_states(output)
    return make_rows(store, states, warnings)


def make_rows(store, states: List[TaskState], warnings: Optional[List[str]] = None
              ) -> List[Row]:
    """The rows of states already read (see `collect_states`)."""
    rows = []
    for state in states:
        row, warning = make_row(state, store.kind == "runfile")
        if warning and warnings is not None:
            warnings.append(f"{warning}; the row of {state.name} has no metrics")
        rows.append(row)
    return rows


def table_columns(rows: List[Row]) -> List[str]:
    """Params, then book-keeping, then metrics, each in order of first appearance."""
    return list(dict.fromkeys([*(k for r in rows for k in r.params),
                               *(k for r in rows for k in r.book),
                               *(k for r in rows for k in r.metrics)]))


def read_results(output: str):
    """The task directory as a pandas DataFrame, one row per task, columns as above."""
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependencyError("pandas", "sweep", "Reading results as a table") from None
    rows = collect_rows(output)
    frame = pd.DataFrame([r.as_dict() for r in rows], columns=table_columns(rows))
    return frame.infer_objects()
