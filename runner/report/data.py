"""What a report shows, as plain JSON-ready data: the summary, the table, the plots' inputs, the
timeline and the failures of an output directory.

Everything comes from the project's readers (`collect_rows` for the table, `collect_states` for
each command's slot, host, times and log), so the report agrees with `run results` and
`run status`. One task's odd files never stop the report: values are taken as they are, and
what cannot be used (a start time that is not a time, a metric that is not a number) is left
out of the plots only.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple

from runner.errors import UsageError, choices_text, did_you_mean
from runner.results import Row, collect_states, make_rows, table_columns
from runner.store.files import read_tail
from runner.store.state import TaskState

FAILED_STATES = ("failed", "timeout")
TAIL_LINES = 20  # last lines of each failed command's log
MAX_TAILS = 100  # failures whose log tails are embedded (all of them are listed)
TAIL_BYTES = 16384
# The book-keeping columns the table shows before "Columns" is opened (as `run results` does).
SHOWN_BOOK = ("_name", "_state", "_runtime")
LEFT_OUT = ("_output",)  # the task's directory: its name says it


def collect_report(output: str, metric: Optional[str] = None, now: Optional[float] = None,
                   warnings: Optional[List[str]] = None) -> Dict[str, Any]:
    """The report of an output directory as one JSON-ready dict (see `page.js` for its use)."""
    now = time.time() if now is None else now
    store, states = collect_states(output)
    rows = make_rows(store, states, warnings)
    columns = [c for c in table_columns(rows) if c not in LEFT_OUT]
    metrics = numeric_metrics(rows)
    chosen = choose_metric(metric, metrics, [c for r in rows for c in r.metrics])
    commands = [(s, name, entry) for s in states for name, entry in s.commands.items()
                if isinstance(entry, dict)]
    return {
        "title": os.path.basename(os.path.abspath(output)) or output,
        "output": os.path.abspath(output),
        "generated": _local(datetime.fromtimestamp(now, timezone.utc)),
        "summary": make_summary(rows, commands, now),
        "columns": [_column(c, rows) for c in columns],
        "rows": [_cells(r.as_dict(), columns) for r in rows],
        "params": [describe_param(p, rows) for p in varying_params(rows)],
        "metrics": metrics,
        "metric": chosen,
        "timeline": make_timeline(commands, rows, now),
        "failures": make_failures(commands),
    }


# -- values -----------------------------------------------------------------------------------

def json_value(value: Any) -> Any:
    """A table cell: numbers, strings, booleans and None as they are; NaN and infinities as
    the strings `nan`, `inf`, `-inf`; lists and mappings as their JSON text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return json.dumps(value, sort_keys=True, default=str)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool, not a string)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _cells(record: Dict[str, Any], columns: List[str]) -> List[Any]:
    return [json_value(record.get(c)) for c in columns]


def as_number(value: Any) -> Optional[float]:
    """A finite number (also from a string such as a runfile's `--lr=0.1`), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _column(name: str, rows: List[Row]) -> Dict[str, Any]:
    kind = ("metric" if any(name in r.metrics for r in rows) else
            "param" if any(name in r.params for r in rows) else "book")
    hidden = kind == "book" and name not in SHOWN_BOOK
    return {"name": name, "kind": kind, "hidden": hidden}


# -- metrics and params -----------------------------------------------------------------------

def numeric_metrics(rows: List[Row]) -> List[str]:
    """The metrics that are a number in at least one task, in table order."""
    names = dict.fromkeys(k for r in rows for k in r.metrics)
    return [n for n in names if any(is_number(r.metrics.get(n)) for r in rows)]


def choose_metric(metric: Optional[str], metrics: List[str], known: Iterable[str]) -> Optional[str]:
    """`--metric NAME` checked against the numeric metrics; by default the first of them."""
    if metric is None:
        return metrics[0] if metrics else None
    if metric in metrics:
        return metric
    if metric in set(known):
        raise UsageError(f"--metric {metric}: no task has a number for it; numeric metrics are "
                         f"{choices_text(metrics)}")
    if not metrics:
        raise UsageError(f"--metric {metric}: no task wrote a numeric metric (metrics.json) yet; "
                         f"leave out --metric")
    raise UsageError(f"--metric {metric}: no such metric{did_you_mean(metric, metrics)}; "
                     f"metrics are {choices_text(metrics)}")


def varying_params(rows: List[Row]) -> List[str]:
    """The params that take more than one value (a task without the param counts as one)."""
    names = dict.fromkeys(k for r in rows for k in r.params)
    out = []
    for name in names:
        values = {json.dumps(r.params.get(name), sort_keys=True, default=str) for r in rows}
        if len(values) > 1:
            out.append(name)
    return out


def describe_param(name: str, rows: List[Row]) -> Dict[str, Any]:
    """How to plot a param: numeric (scatter; log axis over 2+ decades) or categorical (box)."""
    numbers = [as_number(r.params.get(name)) for r in rows]
    numeric = all(n is not None for n in numbers)
    positive = numeric and min(numbers) > 0
    log = positive and max(numbers) / min(numbers) >= 100
    return {"name": name, "numeric": numeric, "log": bool(log)}


# -- time -------------------------------------------------------------------------------------

def parse_time(value: Any) -> Optional[datetime]:
    """An ISO 8601 time from a state file (an aware datetime), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.astimezone()


_EPOCH = datetime(1970, 1, 1)


def _local_ms(moment: datetime) -> int:
    """Local wall-clock time as milliseconds since 1970 (a date axis shows it unconverted)."""
    return round((moment.astimezone().replace(tzinfo=None) - _EPOCH).total_seconds() * 1000)


def _local(moment: datetime) -> str:
    """Local wall-clock time as plotly reads dates: `2026-11-21 10:00:00.123`."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _span(entry: Dict[str, Any], now: float) -> Optional[Tuple[datetime, datetime]]:
    """(start, end) of a command that started; a running one ends now."""
    start = parse_time(entry.get("start"))
    if start is None:
        return None
    end = parse_time(entry.get("end"))
    if end is None and entry.get("status") == "running":
        end = datetime.fromtimestamp(now, timezone.utc)
    if end is None:
        seconds = as_number(entry.get("duration"))
        end = start if seconds is None else datetime.fromtimestamp(start.timestamp() + seconds,
                                                                   timezone.utc)
    return start, max(start, end)


def _gpu_count(gpus: Any) -> int:
    if isinstance(gpus, str):
        return len([g for g in gpus.split(",") if g.strip()])
    if isinstance(gpus, (list, tuple)):
        return len(gpus)
    return 0


def lane(entry: Dict[str, Any], several_hosts: bool) -> str:
    """Where a command ran, as a timeline row: `slot 1 (GPU 1)`, `node2 slot 0`, `node2`."""
    slot, host, gpus = entry.get("slot"), entry.get("host"), entry.get("gpus")
    where = ""
    if slot is not None:
        where = f"slot {slot}" + (f" (GPU {gpus})" if gpus not in (None, "") else "")
    if host and (several_hosts or not where):
        where = f"{host} {where}".strip()
    return where or "unknown"


def _natural(text: str) -> List[Any]:
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p]


Command = Tuple[TaskState, str, Dict[str, Any]]


def make_summary(rows: List[Row], commands: List[Command], now: float) -> Dict[str, Any]:
    """Counts by state, first start, last end, wall time, task hours, GPU hours, slots used."""
    counts: Dict[str, int] = {}
    for row in rows:
        state = str(row.book.get("_state"))
        counts[state] = counts.get(state, 0) + 1
    spans = [(_span(e, now), e) for _, _, e in commands]
    spans = [(s, e) for s, e in spans if s is not None]
    first = min((s[0] for s, _ in spans), default=None)
    last = max((s[1] for s, _ in spans), default=None)
    seconds = sum((s[1] - s[0]).total_seconds() for s, _ in spans)
    gpu_seconds = sum((s[1] - s[0]).total_seconds() * _gpu_count(e.get("gpus")) for s, e in spans)
    several = len({e.get("host") for _, e in spans}) > 1
    lanes = sorted({lane(e, several) for _, e in spans}, key=_natural)
    return {
        "tasks": len(rows),
        "counts": counts,
        "commands": len(commands),
        "first_start": _local(first) if first else None,
        "last_end": _local(last) if last else None,
        "wall_seconds": (last - first).total_seconds() if first else None,
        "task_hours": seconds / 3600,
        "gpu_hours": gpu_seconds / 3600,
        "running": any(e.get("status") == "running" for _, _, e in commands),
        "lanes": lanes,
    }


def make_timeline(commands: List[Command], rows: List[Row], now: float) -> Dict[str, Any]:
    """Every started command as a bar on its lane: [row, command, status, lane, start, end] with
    the row's index in the table, the command's and lane's index in `commands` and `lanes`, and
    times as local wall-clock milliseconds (what plotly's date axis shows as they are)."""
    index = {r.book.get("_name"): i for i, r in enumerate(rows)}
    spans = [(s, name, e, _span(e, now)) for s, name, e in commands if s.name in index]
    spans = [s for s in spans if s[3] is not None]
    several = len({s[2].get("host") for s in spans}) > 1
    lanes = sorted({lane(s[2], several) for s in spans}, key=_natural)
    lane_index = {name: i for i, name in enumerate(lanes)}
    names = list(dict.fromkeys(name for _, name, _, _ in spans))
    name_index = {name: i for i, name in enumerate(names)}
    bars = [[index[task.name], name_index[name], str(entry.get("status")),
             lane_index[lane(entry, several)], _local_ms(start), _local_ms(end)]
            for task, name, entry, (start, end) in sorted(spans, key=lambda s: s[3][0])]
    return {"lanes": lanes, "commands": names, "bars": bars}


# -- failures ---------------------------------------------------------------------------------

def make_failures(commands: List[Command]) -> List[Dict[str, Any]]:
    """Each failed or timed-out command: exit status or signal, attempts, log and its tail."""
    out = []
    for task, name, entry in commands:
        if entry.get("status") not in FAILED_STATES:
            continue
        logs = [p for p in (task.log_of(entry), task.log_of(entry, "err_log")) if p]
        failure = {"task": task.name, "command": name, "status": entry.get("status"),
                   "exit_status": json_value(entry.get("exit_status")),
                   "signal": json_value(entry.get("signal")),
                   "attempts": json_value(entry.get("attempts") or entry.get("attempt") or 1),
                   "end": json_value(entry.get("end")), "logs": logs, "tails": []}
        if len(out) < MAX_TAILS:
            failure["tails"] = [read_tail(p, TAIL_LINES, TAIL_BYTES) for p in logs]
        out.append(failure)
    return out
