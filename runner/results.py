"""A YAML runner's output directory as one table: params, state, timings and metrics per task.

Each row is a task: its params as written to `param.json`, book-keeping columns that start with
`_` (`_name`, `_state`, `_start`, `_end`, `_runtime`, `_gpus`, `_host`, and per command
`_<command>_status` / `_<command>_exit_status` / `_<command>_duration`), then whatever the task
wrote to `metrics.json` in its directory (nested keys joined with `.`; a metric whose name is
also a param gets a trailing `_`). pandas is needed: `pip install 'runner[sweep]'`.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, NamedTuple

from runner.errors import MissingDependencyError
from runner.store.status import collect_states
from runner.store.files import read_json
from runner.store.sweep import Store, existing_output

METRICS_FILE = "metrics.json"


def flatten(data: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'val': {'loss': 1}} -> {'val.loss': 1}."""
    out: Dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


class Row(NamedTuple):
    """One task: its params, its book-keeping columns, its metrics."""

    params: Dict[str, Any]
    book: Dict[str, Any]
    metrics: Dict[str, Any]

    def as_dict(self) -> Dict[str, Any]:
        return {**self.params, **self.book, **self.metrics}


def collect_rows(output: str) -> List[Row]:
    """One row per task of the output directory (no pandas needed)."""
    existing_output(output)
    rows = []
    for state in collect_states(Store(output)):
        params = {k: v for k, v in state.params.items() if not k.startswith("_")}
        entries = [e for e in state.commands.values() if e.get("start")]
        book: Dict[str, Any] = {
            "_name": state.name,
            "_state": state.state.value,
            "_start": min((e["start"] for e in entries), default=None),
            "_end": max((e.get("end") or "" for e in entries), default="") or None,
            "_runtime": sum(e.get("duration") or 0 for e in entries) if entries else None,
            "_gpus": next((e["gpus"] for e in entries if e.get("gpus") is not None), None),
            "_host": next((e["host"] for e in entries if e.get("host")), None),
            "_output": state.params.get("_output"),
            "_datetime": state.params.get("_datetime"),
        }
        for command, entry in state.commands.items():
            book[f"_{command}_status"] = entry.get("status")
            book[f"_{command}_exit_status"] = entry.get("exit_status")
            book[f"_{command}_duration"] = entry.get("duration")
        found = read_json(os.path.join(state.dir, METRICS_FILE)) if state.dir else None
        metrics = {(f"{k}_" if k in params else k): v
                   for k, v in (flatten(found) if isinstance(found, dict) else {}).items()}
        rows.append(Row(params, book, metrics))
    return rows


def table_columns(rows: List[Row]) -> List[str]:
    """Params, then book-keeping, then metrics, each in order of first appearance."""
    return list(dict.fromkeys([*(k for r in rows for k in r.params),
                               *(k for r in rows for k in r.book),
                               *(k for r in rows for k in r.metrics)]))


def read_results(output: str):
    """The output directory as a pandas DataFrame, one row per task, columns as above."""
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependencyError("pandas", "sweep", "Reading results as a table") from None
    rows = collect_rows(output)
    frame = pd.DataFrame([r.as_dict() for r in rows], columns=table_columns(rows))
    return frame.infer_objects()
