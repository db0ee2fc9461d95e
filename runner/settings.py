"""Per-task settings: how a task runs rather than what it computes.

A setting is given in document 0 (for every task) or as a param of the task (from a document, a
pack or `default:`; a param wins). Values are validated and normalised here once, so the scheduler,
the executor and remote backends read plain numbers from `Task.settings`.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Mapping

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9, "t": 10 ** 12,
          "ki": 2 ** 10, "mi": 2 ** 20, "gi": 2 ** 30, "ti": 2 ** 40}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_memory(value: Any) -> int:
    """'10GiB' -> bytes. A unit is required (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB; K/M/G/T)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"{value!r} has no unit; write e.g. '10GiB' or '500MiB'")
    match = _MEMORY.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a memory size; write e.g. '10GiB' or '500MiB'")
    number, unit = match.groups()
    unit = unit.lower().rstrip("b") or "b"
    return int(float(number) * _UNITS[unit])


def parse_duration(value: Any) -> float:
    """Seconds from 90, '90s', '10m', '1h30m', '2d', 'HH:MM:SS' or 'D-HH:MM:SS'."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*(\d+-)?\d+(:\d+){0,2}\s*", value):
        days, _, clock = value.strip().rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        while len(parts) < 3:
            parts.insert(0, 0)
        seconds = (int(days or 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2])
    elif isinstance(value, str) and re.fullmatch(r"(\s*\d+(\.\d+)?\s*[dhms])+\s*", value, re.I):
        seconds = sum(float(n) * _SECONDS[u.lower()] for n, u in _DURATION_PART.findall(value))
    else:
        raise ValueError(f"{value!r} is not a duration; write seconds (90) or e.g. '10m', "
                         f"'1h30m', '02:00:00'")
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def parse_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{value!r} is not a positive whole number")
    return value


def parse_percent(value: Any) -> float:
    if isinstance(value, str) and value.strip().endswith("%"):
        value = value.strip()[:-1]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a percentage; write e.g. 80 or '80%'") from None
    if not 0 <= number <= 100:
        raise ValueError(f"{value!r} is not between 0 and 100")
    return number


def parse_raw(value: Any) -> Any:
    return value


# setting -> (parser, what it means). Features that add settings register them here.
SETTINGS: Dict[str, tuple] = {
    "gpus_per_task": (parse_count, "GPUs each task gets (a whole number)"),
    "gpu_memory": (parse_memory, "GPU memory a task needs, e.g. '10GiB'"),
    "max_gpu_util": (parse_percent, "start a task on a GPU only below this utilisation (%)"),
    "timeout": (parse_duration, "stop a command after this long, e.g. '2h' or 7200"),
    "retries": (parse_raw, "how often, and on which failures, to run a failed command again"),
}


def parse_setting(key: str, value: Any) -> Any:
    """The normalised value of one setting; ValueError with the reason if it is invalid."""
    parser: Callable[[Any], Any] = SETTINGS[key][0]
    return parser(value)


def resolve_settings(config_level: Mapping[str, Any], params: Mapping[str, Any]) -> Dict[str, Any]:
    """A task's settings: its params override document 0 (both already validated)."""
    out = {}
    for key in SETTINGS:
        if key in params:
            out[key] = params[key]
        elif key in config_level:
            out[key] = config_level[key]
    return out
